import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, submit, waitForRun } from "../helpers/server.js";

/**
 * The run page draws a graph run in a real browser against a real `runyard up`: a box per step
 * with its state, an arrow per `depends` edge, a matrix step's combinations when its box is
 * opened, and the states moving as the run goes on (an approval holds it until the test answers).
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

const workflow = `name: graph-demo
max_parallel: 4
steps:
  - name: build
    depends: []
    action: cmd.run
    args: {cmd: echo built}
  - name: gate
    depends: [build]
    action: approval
    args:
      message: Go on?
      approvers: ["role:admin"]
  - name: test
    depends: [gate]
    matrix:
      NODE: ["18", "20"]
    action: shell.run
    args: {script: echo "node $NODE"}
  - name: broken
    depends: [gate]
    action: cmd.run
    args: {cmd: sh -c "exit 3"}
  - name: deploy
    depends: [test, broken]
    action: cmd.run
    args: {cmd: echo deployed}
`;

const sizes = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];

const box = (page: Page, step: string) => page.locator(`.step-box[data-step="${step}"]`);

describe.skipIf(!haveBrowser)("the run page's step graph", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  for (const size of sizes) {
    it(`draws boxes and edges, follows the run live and expands the matrix at ${size.width}x${size.height}`, async () => {
      const runId = await submit(up.url, workflow);
      await waitForRun(up.url, runId, (run) =>
        run.steps.some((s) => s.name === "gate" && s.status === "waiting"),
      );
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/runs/${runId}`);

      await expect.poll(() => box(page, "gate").getAttribute("data-state")).toBe("waiting");
      expect(await box(page, "build").getAttribute("data-state")).toBe("success");
      expect(await box(page, "test").getAttribute("data-state")).toBe("pending");
      expect(await page.locator(".step-box").count()).toBe(5);
      const edges = await page
        .locator(".step-graph-edges path[data-from]")
        .evaluateAll((paths) =>
          paths.map((p) => `${p.getAttribute("data-from")}->${p.getAttribute("data-to")}`),
        );
      expect(edges.sort()).toEqual(
        ["broken->deploy", "build->gate", "gate->broken", "gate->test", "test->deploy"].sort(),
      );
      // Every edge runs left to right, from its step's box to the box of the step that waits.
      for (const [from, to] of [
        ["build", "gate"],
        ["gate", "test"],
        ["test", "deploy"],
      ] as const) {
        const a = (await box(page, from).boundingBox())!;
        const b = (await box(page, to).boundingBox())!;
        expect(b.x).toBeGreaterThan(a.x + a.width);
      }

      // Answered over the API: the open page moves on from the event stream, without a reload.
      const answered = await api(up.url, "POST", `/api/runs/${runId}/steps/gate/approve`, { comment: "go" });
      expect(answered.status, JSON.stringify(answered.body)).toBe(200);
      // The boxes change as their events arrive, which may be in more than one chunk: wait for
      // the page to show the run's end in every box.
      const states = () =>
        Promise.all(
          ["gate", "test", "broken", "deploy"].map(async (name) =>
            box(page, name).getAttribute("data-state"),
          ),
        );
      await expect.poll(states, { timeout: 20_000 }).toEqual(["success", "success", "failed", "skipped"]);
      expect(await box(page, "test").textContent()).toContain("2/2");

      await box(page, "test").click();
      expect(await box(page, "test").getAttribute("aria-expanded")).toBe("true");
      const combinations = page.locator('ul[aria-label="Combinations of test"] li');
      await combinations.first().waitFor();
      expect(
        await combinations.evaluateAll((items) => items.map((i) => i.getAttribute("data-combination"))),
      ).toEqual(["test (NODE=18)", "test (NODE=20)"]);
      expect(
        await combinations.evaluateAll((items) => items.map((i) => i.getAttribute("data-state"))),
      ).toEqual(["success", "success"]);
      // Opening the box shows that step's output.
      expect(await page.locator(".run-step-filter select").inputValue()).toMatch(/^test \(NODE=18\)@/);

      // The graph scrolls inside its frame; the page never scrolls sideways.
      const frame = (await page.locator(".step-graph-frame").boundingBox())!;
      expect(frame.x).toBeGreaterThanOrEqual(0);
      expect(frame.x + frame.width).toBeLessThanOrEqual(size.width);
      const overflow = await page.evaluate<number>(
        "document.documentElement.scrollWidth - window.innerWidth",
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await page.locator(".step-graph").scrollIntoViewIfNeeded();
      await screenshot(page, `run-graph-${size.name}`, "viewport");
      const run = await waitForRun(up.url, runId, isFinal);
      expect(run.status).toBe("failed");
      await page.close();
    }, 60_000);
  }

  it("draws no graph for steps in file order", async () => {
    const runId = await submit(
      up.url,
      "name: plain\nsteps:\n  - name: one\n    action: cmd.run\n    args: {cmd: echo one}\n",
    );
    await waitForRun(up.url, runId, isFinal);
    const shown = await api<{ graph?: unknown }>(up.url, "GET", `/api/runs/${runId}`);
    expect(shown.body.graph).toBeUndefined();
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${runId}`);
    await page.getByRole("heading", { name: "Steps" }).waitFor();
    expect(await page.locator(".step-graph").count()).toBe(0);
    await page.close();
  });
});
