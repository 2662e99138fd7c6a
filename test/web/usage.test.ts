import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, waitForRun } from "../helpers/server.js";
import { type ModelServer, startModelServer, turns } from "../model-server/server.js";

/**
 * The Usage page in a real browser against a real `runyard up`: one agent turn of the built-in
 * `openai` agent against the scripted model reports 1,000,000 input tokens of gpt-4.1 ($2 at its
 * list price); the page shows it in the day's bar and in the table, on a desktop and a phone,
 * and a member of another tenant sees none of it.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;
let model: ModelServer;

describe.skipIf(!haveBrowser)("the Usage page", () => {
  beforeAll(async () => {
    model = await startModelServer(
      turns({ text: "Hello.", usage: { input_tokens: 1_000_000, output_tokens: 0 } }),
    );
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
    const submitted = await api<{ run_id: string }>(up.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      model: "gpt-4.1",
      prompt: "say hello",
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-usage-page" },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const run = await waitForRun(up.url, submitted.body.run_id, isFinal, 120_000);
    expect(run.status).toBe("success");
  }, 180_000);

  afterAll(async () => {
    await browser?.close();
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
      expect(cells.slice(0, 2)).toEqual(["gpt-4.1", "$2.00"]);
      const today = new Date().toISOString().slice(0, 10);
      const bar = page.locator(`svg rect[data-day="${today}"]`);
      expect(Number(await bar.getAttribute("data-usd"))).toBeCloseTo(2, 6);
      expect(Number(await bar.getAttribute("height"))).toBeGreaterThan(100);
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
    expect(await page.locator(".usage-total").textContent()).toMatch(/^\$0\.00 spent/);
    await page.close();
  }, 60_000);
});
