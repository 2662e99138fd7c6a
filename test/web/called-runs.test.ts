import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, submit, waitForRun } from "../helpers/server.js";
import { terminalLines, terminalShows } from "../helpers/web-terminal.js";

/**
 * The run page of a run with a `workflow.call` step, in a real browser against a real
 * `runyard up`: the call's child drawn inside the graph under the call step (closed until opened)
 * with a link to its page, whose "Called by" links back; the call step's output its child's; and
 * a failed `on:` handler reported beside a status that stands.
 */

const sizes = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

const callee = `name: child-flow
steps:
  - {name: one, action: cmd.run, args: {cmd: echo one}}
  - {name: two, action: cmd.run, args: {cmd: echo two}}
`;

const caller = `name: parent-flow
steps:
  - name: reuse
    action: workflow.call
    args: {workflow: child-flow}
on:
  success:
    - {name: notify, action: cmd.run, args: {cmd: "false"}}
`;

describe.skipIf(!haveBrowser)("the run page of a call", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  for (const size of sizes) {
    it(`draws the child's steps in place under the call step, opened on demand, its output on selecting the call, and links both ways at ${size.width}x${size.height}`, async () => {
      await api(up.url, "POST", "/api/workflows", { name: "child-flow", workflow: callee });
      const runId = await submit(up.url, caller);
      const run = await waitForRun(up.url, runId, isFinal, 60_000);
      expect(run.status).toBe("success");
      const childId = (run as unknown as { calls: Array<{ run_id: string }> }).calls[0]!.run_id;
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/runs/${runId}`);
      const graph = page.locator(".step-graph-canvas");
      const toggle = graph.getByRole("button", {
        name: "Show the 2 steps of child-flow, called by reuse",
        exact: true,
      });
      await toggle.waitFor({ timeout: 30_000 });
      // Closed at first: the box alone, no child step drawn.
      expect(await toggle.getAttribute("aria-expanded")).toBe("false");
      const group = graph.getByRole("region", { name: "Steps of child-flow, called by reuse" });
      expect(await group.count()).toBe(0);
      const closedHeight = (await graph.boundingBox())!.height;
      await toggle.click();
      await group.waitFor();
      expect(
        await graph
          .getByRole("button", { name: "Hide the 2 steps of child-flow, called by reuse", exact: true })
          .getAttribute("aria-expanded"),
      ).toBe("true");
      // The child's steps in the graph, under the call step's box, with their states and durations.
      const lines = await group.locator("li").allInnerTexts();
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(/^one success · \d+ (ms|s)$/);
      expect(lines[1]).toMatch(/^two success · \d+ (ms|s)$/);
      const box = (await graph.locator('[data-step="reuse"]').boundingBox())!;
      const drawn = (await group.boundingBox())!;
      expect(drawn.y).toBeGreaterThanOrEqual(box.y + box.height);
      expect(Math.abs(drawn.x - box.x)).toBeLessThan(2);
      expect((await graph.boundingBox())!.height).toBeGreaterThan(closedHeight + drawn.height - 1);
      expect(await group.getByRole("link").getAttribute("href")).toBe(
        `#/runs/${encodeURIComponent(childId)}`,
      );
      await screenshot(page, `run-call-${size.name}`, "viewport");
      // Selecting the call step shows its child's output, which the call step itself has none of.
      await graph.locator('[data-step="reuse"]').click();
      await page.getByText("the output of its run").waitFor();
      await terminalShows(page, "one");
      await terminalShows(page, "two");
      await page.getByRole("button", { name: "Show this run's output", exact: true }).click();
      await page.getByText("the output of its run").waitFor({ state: "detached" });
      expect(await terminalLines(page)).not.toContain("one");
      expect(await page.locator(".run-handlers").textContent()).toContain(
        "Handler on success: notify did not succeed; the run's status (success) stands.",
      );
      // Linked both ways: the child's page names the run and step that called it.
      await group.getByRole("link").click();
      await page.waitForSelector("text=Called by", { timeout: 30_000 });
      expect(await page.locator(".run-facts").textContent()).toContain(`${runId} (step reuse)`);
      await page.locator(".run-facts a").click();
      await page.locator('.step-graph-canvas [data-step="reuse"]').waitFor({ timeout: 30_000 });
      expect(page.url()).toContain(`#/runs/${runId}`);
      await page.close();
    }, 120_000);
  }
});
