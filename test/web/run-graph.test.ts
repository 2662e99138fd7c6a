import type { Browser, Page, Route } from "playwright-core";
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

/** "850 ms", "12 s", "1 min 5 s" as milliseconds (seconds are rounded on the page). */
function durationMs(text: string): number {
  const ms = /^(\d+) ms$/.exec(text);
  if (ms) return Number(ms[1]);
  const parts = /^(?:(\d+) min ?)?(?:(\d+(?:\.\d)?) s)?$/.exec(text);
  if (!parts) throw new Error(`not a duration: ${text}`);
  return Math.round((Number(parts[1] ?? 0) * 60 + Number(parts[2] ?? 0)) * 1000);
}

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
      // A box says how long its step took, and a skipped one why it did not run.
      await expect
        .poll(() => box(page, "build").locator(".step-box-duration").textContent())
        .toMatch(/^ · \d+ (ms|s)$/);
      await expect
        .poll(() => box(page, "deploy").locator(".step-box-note").textContent())
        .toBe('dependency "broken" failed');

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

      // The timeline: a bar per step that ran, placed by its start and end on the run's axis, whose
      // ticks are round durations up to the run's length; a step that did not run says why instead.
      await page.getByRole("button", { name: "Timeline" }).click();
      const timeline = page.getByRole("table", { name: /^Timeline: / });
      await timeline.waitFor();
      const bar = (step: string) => timeline.locator(`tr[data-step^="${step}@"] .step-timeline-bar`);
      const span = async (key: string) => {
        const [start, end] = await Promise.all([
          bar(key).getAttribute("data-start-ms"),
          bar(key).getAttribute("data-end-ms"),
        ]);
        return { start: Number(start), end: Number(end) };
      };
      const [build, gate] = [await span("build"), await span("gate")];
      expect(build.end).toBeGreaterThanOrEqual(build.start);
      // gate waited for build, then for its answer: its bar starts where build's ends, or after.
      expect(gate.start).toBeGreaterThanOrEqual(build.end);
      const lane = (await timeline.locator('tr[data-step^="build@"] .step-timeline-lane').boundingBox())!;
      const gateBox = (await bar("gate").boundingBox())!;
      const buildBox = (await bar("build").boundingBox())!;
      expect(gateBox.x).toBeGreaterThanOrEqual(buildBox.x);
      expect(gateBox.x + gateBox.width).toBeLessThanOrEqual(lane.x + lane.width + 1);
      expect(await timeline.locator('tr[data-step^="deploy@"] .step-timeline-none').textContent()).toBe(
        'skipped: dependency "broken" failed',
      );
      const times = (
        await api<{ started_at: string; finished_at: string }>(up.url, "GET", `/api/runs/${runId}`)
      ).body;
      const total = Date.parse(times.finished_at) - Date.parse(times.started_at);
      // Round ticks, evenly apart, the last the first round one at or past the run's length.
      const ticks = (await timeline.locator(".step-timeline-tick").allTextContents()).map(durationMs);
      const step = ticks[1]! - ticks[0]!;
      expect(ticks[0]).toBe(0);
      expect([200, 500, 1000, 2000, 5000, 10_000, 15_000, 30_000]).toContain(step);
      expect(
        ticks.every((tick, index) => tick === index * step),
        `ticks ${ticks.join(", ")}`,
      ).toBe(true);
      const length = Math.max(total, gate.end, build.end);
      expect(ticks.at(-1)!).toBeGreaterThanOrEqual(length - 500);
      expect(ticks.at(-2)!).toBeLessThan(length + 500);
      await page.locator(".step-timeline").scrollIntoViewIfNeeded();
      await screenshot(page, `run-timeline-${size.name}`, "viewport");
      await page.close();
    }, 60_000);
  }

  it("never draws a step back when the run's record, asked for before newer events, answers after them", async () => {
    // The page asks for the run's record when a step starts or ends; events that come while the
    // answer is on its way are drawn at once. An answer sent before them must not be drawn over
    // them: here `second` shows `success` from its events, and a record taken while it waited
    // comes after (held by the browser's own request routing, as a slow network would).
    const runId = await submit(
      up.url,
      `name: late-record
steps:
  - name: first
    action: approval
    args: {message: One?, approvers: ["role:admin"]}
  - name: second
    action: approval
    args: {message: Two?, approvers: ["role:admin"]}
`,
    );
    await waitForRun(up.url, runId, (run) =>
      run.steps.some((s) => s.name === "first" && s.status === "waiting"),
    );
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${runId}`);
    await expect
      .poll(() => box(page, "first").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("waiting");
    expect(await box(page, "second").getAttribute("data-state")).toBe("pending");
    // Every state `second`'s box takes from here on, in order.
    await page.evaluate(`(() => {
      const seen = [];
      window.secondStates = seen;
      new MutationObserver(() => {
        const state = document.querySelector('.step-box[data-step="second"]')?.getAttribute("data-state");
        if (state && seen.at(-1) !== state) seen.push(state);
      }).observe(document.body, { subtree: true, attributes: true, attributeFilter: ["data-state"] });
    })()`);

    // The run's record: the first request from here is held (handed to the test); the next is
    // noted and let through.
    let hold: ((route: Route) => void) | undefined;
    const held = new Promise<Route>((resolve) => (hold = resolve));
    let noteNext: (() => void) | undefined;
    const askedAgain = new Promise<void>((resolve) => (noteNext = resolve));
    await page.route(
      (url) => url.pathname === `/api/runs/${runId}`,
      async (route) => {
        if (hold) {
          hold(route);
          hold = undefined;
          return;
        }
        noteNext?.();
        await route.continue();
      },
    );

    // `first` answered: `second` starts waiting, and the page asks for the record.
    expect((await api(up.url, "POST", `/api/runs/${runId}/steps/first/approve`, {})).status).toBe(200);
    const route = await held;
    await waitForRun(up.url, runId, (run) =>
      run.steps.some((s) => s.name === "second" && s.status === "waiting"),
    );
    // The record as it stands now, `second` waiting, is what the held request will answer.
    const stale = await route.fetch();
    // `second` answered: its events say success, and the page draws them while its request waits.
    expect((await api(up.url, "POST", `/api/runs/${runId}/steps/second/approve`, {})).status).toBe(200);
    await waitForRun(up.url, runId, isFinal);
    await expect
      .poll(() => box(page, "second").getAttribute("data-state"), { timeout: 20_000 })
      .toBe("success");

    await route.fulfill({ response: stale });
    // The page asks again once it has read the held answer (and, before, drew it or not).
    await askedAgain;
    const states = (await page.evaluate("window.secondStates")) as string[];
    expect(states.slice(states.indexOf("success"))).toEqual(["success"]);
    expect(await box(page, "second").getAttribute("data-state")).toBe("success");
    await page.close();
  });

  it("draws steps in file order as a chain", async () => {
    const runId = await submit(
      up.url,
      "name: plain\nsteps:\n  - name: one\n    action: cmd.run\n    args: {cmd: echo one}\n  - name: two\n    action: cmd.run\n    args: {cmd: echo two}\n",
    );
    await waitForRun(up.url, runId, isFinal);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${runId}`);
    await box(page, "two").waitFor();
    expect(await page.locator(".step-box").count()).toBe(2);
    const edges = await page
      .locator(".step-graph-edges path[data-from]")
      .evaluateAll((paths) =>
        paths.map((p) => `${p.getAttribute("data-from")}->${p.getAttribute("data-to")}`),
      );
    expect(edges).toEqual(["one->two"]);
    await expect.poll(() => box(page, "two").getAttribute("data-state")).toBe("success");
    await page.close();
  });
});
