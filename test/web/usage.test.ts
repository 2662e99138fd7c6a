import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, type Proc, startRunner, waitForRun } from "../helpers/server.js";
import { type ModelServer, startModelServer, turns } from "../model-server/server.js";

/**
 * The Usage page in a real browser against a real `runyard up`: one agent turn of the built-in
 * `openai` agent against the scripted model reports 1,000,000 input tokens of gpt-4.1 ($2 at its
 * list price); the page shows it in the day's bar and in the table, on a desktop and a phone,
 * and a member of another tenant sees none of it. Tenant acme, with a daily budget of $5, runs
 * the same turn on gpt-4.1 ($2) and gpt-4.1-mini ($0.40) on its own runner: its member sees the
 * day's bar stacked by model under the budget's line, and reads the day by pointer and keys.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;
let model: ModelServer;
let acmeRunner: Proc;
let acme: string;

async function agentTurn(token: string | undefined, modelName: string): Promise<void> {
  const submitted = await api<{ run_id: string }>(
    up.url,
    "POST",
    "/api/runs",
    {
      kind: "agent",
      agent: "openai",
      model: modelName,
      prompt: "say hello",
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-usage-page" },
    },
    token,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const run = await waitForRun(up.url, submitted.body.run_id, isFinal, 120_000);
  expect(run.status, `${modelName}: ${JSON.stringify(run)}`).toBe("success");
}

async function token(body: Record<string, string>): Promise<string> {
  const made = await api<{ token: string }>(up.url, "POST", "/api/tokens", body);
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return made.body.token;
}

describe.skipIf(!haveBrowser)("the Usage page", () => {
  beforeAll(async () => {
    model = await startModelServer(
      turns({ text: "Hello.", usage: { input_tokens: 1_000_000, output_tokens: 0 } }),
    );
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
    acme = await token({ kind: "user", name: "acme member", tenant_id: "acme" });
    acmeRunner = await startRunner(
      up.url,
      await token({ kind: "runner", name: "acme runner", tenant_id: "acme" }),
      {
        id: `acme-usage-${process.pid}`,
      },
    );
    await Promise.all([
      agentTurn(undefined, "gpt-4.1"),
      agentTurn(acme, "gpt-4.1"),
      agentTurn(acme, "gpt-4.1-mini"),
    ]);
    // Set once the turns ended: a turn holds what is left of a budget while it runs.
    const budget = await api(up.url, "PUT", "/api/budgets/tenants/acme", { usd_per_day: 5 });
    expect(budget.status, JSON.stringify(budget.body)).toBe(200);
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
    await acmeRunner?.kill();
    await up?.proc.kill();
    await model?.stop();
  });

  for (const viewport of [
    { width: 1280, height: 800 },
    { width: 390, height: 844 },
  ]) {
    it(`shows the day's spend as a bar and a row per model at ${viewport.width}x${viewport.height}`, async () => {
      const page = await browser.newPage({ viewport });
      await logIn(page, up.url);
      await page.getByRole("link", { name: "Usage" }).click();
      await page.getByRole("heading", { name: "Usage" }).waitFor();
      await page.getByRole("button", { name: "Model" }).click();
      const table = page.getByRole("table", { name: "Spend per model" });
      await table.waitFor();
      const cells = await table.locator("tbody tr").first().locator("td").allTextContents();
      expect(cells.slice(0, 2)).toEqual(["gpt-4.1", "$4.0000"]);
      const today = new Date().toISOString().slice(0, 10);
      const bar = page.locator(`svg g[data-day="${today}"]`);
      expect(Number(await bar.getAttribute("data-usd"))).toBeCloseTo(4.4, 6);
      // Grouped by model, the day's bar is stacked: gpt-4.1's $4 at the bottom, gpt-4.1-mini's on it.
      expect(
        await bar.locator("rect").evaluateAll((rects) => rects.map((r) => r.getAttribute("data-key"))),
      ).toEqual(["gpt-4.1", "gpt-4.1-mini"]);
      const box = await bar.boundingBox();
      const plot = await page.getByTestId("usage-chart").boundingBox();
      // The tallest bar reaches most of the way up an axis scaled to it.
      expect(box!.height).toBeGreaterThan(plot!.height * 0.6);
      const chart = await page.locator(".usage-chart svg").boundingBox();
      expect(chart?.width).toBeGreaterThan(viewport.width / 2);
      expect(chart?.width).toBeLessThanOrEqual(viewport.width);
      // Nothing sticks out sideways on a phone.
      const overflow = Number(
        await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await screenshot(page, `web-usage-${viewport.width}`);
      await page.close();
    }, 60_000);
  }

  for (const viewport of [
    { width: 1280, height: 800 },
    { width: 390, height: 844 },
  ]) {
    it(`stacks a tenant's day by the grouping under its daily budget, read by pointer and keys at ${viewport.width}x${viewport.height}`, async () => {
      const page = await browser.newPage({ viewport });
      await logIn(page, up.url, acme);
      await page.goto(`${up.url}#/usage?by=model&since=7d`);
      await page.getByRole("table", { name: "Spend per model" }).waitFor();
      const today = new Date().toISOString().slice(0, 10);
      const bar = page.locator(`svg g[data-day="${today}"]`);
      const parts = () =>
        bar
          .locator("rect")
          .evaluateAll((rects) =>
            rects.map((r) => [r.getAttribute("data-key"), Number(r.getAttribute("data-usd"))]),
          );
      expect(await parts()).toEqual([
        ["gpt-4.1", 2],
        ["gpt-4.1-mini", 0.4],
      ]);
      const legend = page.getByRole("list", { name: "Colours by model" });
      expect(await legend.locator("li").allTextContents()).toEqual(["gpt-4.1", "gpt-4.1-mini"]);

      // The axis: round dollar ticks up to the $5 budget, its line drawn across, once the budget
      // (a request of its own) has come: before it the axis ends at the bars' $3.
      await page.getByText("the dashed line is the daily budget, $5.0000").waitFor();
      const ticks = await page.locator(".usage-chart .chart-y span").allTextContents();
      expect(ticks[0]).toBe("$0");
      expect(Number.parseFloat(ticks.at(-1)!.slice(1))).toBeGreaterThanOrEqual(5);
      expect(await page.locator(".usage-chart line.chart-grid").count()).toBe(ticks.length);
      expect(await page.getByTestId("usage-budget-line").count()).toBe(1);
      await page.getByText("the dashed line is the daily budget, $5.0000").waitFor();

      // The keyboard: focus reads today, the left arrow the day before.
      const chart = page.getByTestId("usage-chart");
      const readout = page.getByTestId("usage-chart-readout");
      await chart.focus();
      await expect
        .poll(() => readout.textContent())
        .toBe(`${today}: $2.4000 · gpt-4.1 $2.0000, gpt-4.1-mini $0.4000`);
      await page.keyboard.press("ArrowLeft");
      const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      await expect.poll(() => readout.textContent()).toBe(`${yesterday}: $0.0000`);
      await page.keyboard.press("ArrowRight");
      await page
        .locator("figure.usage-chart")
        .evaluate((figure) => figure.scrollIntoView({ block: "center" }));
      await screenshot(page, `web-usage-stacked-${viewport.width}`, "viewport");

      // The pointer: over today's bar, today's figures.
      await page.getByRole("heading", { name: "Usage" }).click();
      await bar.locator("rect").first().hover();
      await expect.poll(() => readout.textContent()).toContain(`${today}: $2.4000`);

      // Grouped by user, the bars follow: one part per user row of the table.
      await page.getByRole("button", { name: "User", exact: true }).click();
      const users = page.getByRole("table", { name: "Spend per user" });
      await users.waitFor();
      const keys = await users.locator("tbody tr td:first-child").allTextContents();
      await expect.poll(async () => (await parts()).map(([key]) => key)).toEqual(keys);
      expect(
        await page.getByRole("list", { name: "Colours by user" }).locator("li").allTextContents(),
      ).toEqual(keys);
      const overflow = Number(
        await page.evaluate("document.documentElement.scrollWidth - window.innerWidth"),
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await page.close();
    }, 60_000);
  }

  it("shows a member of another tenant none of it", async () => {
    const token = await api<{ token: string }>(up.url, "POST", "/api/tokens", {
      kind: "user",
      name: "globex member",
      tenant_id: "globex",
    });
    expect(token.status).toBe(201);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url, token.body.token);
    await page.getByRole("link", { name: "Usage" }).click();
    await page.getByText("No agent spent anything in this window.").waitFor();
    expect(await page.getByRole("table").count()).toBe(0);
    expect(await page.locator(".usage-total").textContent()).toMatch(/^\$0\.0000 spent/);
    await page.close();
  }, 60_000);
});
