import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, submit, waitForRun } from "../helpers/server.js";

/**
 * The run page of a run with a `workflow.call` step, in a real browser against a real
 * `runyard up`: the call's child drawn as a collapsed group of its steps with a link to its page,
 * whose "Called by" links back; and a failed `on:` handler reported beside a status that stands.
 */

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

  it("shows the child as a collapsed group linked both ways, and a failed handler with the status standing", async () => {
    const saved = await api(up.url, "POST", "/api/workflows", { name: "child-flow", workflow: callee });
    expect(saved.status).toBe(201);
    const runId = await submit(up.url, caller);
    const run = await waitForRun(up.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    const page = await browser.newPage();
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${runId}`);
    await page.waitForSelector("details.called-run", { timeout: 30_000 });
    const group = page.locator("details.called-run");
    expect(await group.count()).toBe(1);
    expect(await group.getAttribute("open")).toBeNull();
    expect(await group.locator("summary").textContent()).toMatch(/reuse calls child-flow v1 success/);
    expect(await page.locator('[aria-label="Steps of child-flow"] li').first().isVisible()).toBe(false);
    await group.locator("summary strong").click();
    expect(await page.locator('[aria-label="Steps of child-flow"] li').allInnerTexts()).toEqual([
      "one success",
      "two success",
    ]);
    expect(await page.locator(".run-handlers").textContent()).toContain(
      "Handler on success: notify did not succeed; the run's status (success) stands.",
    );
    await group.locator("summary a").click();
    await page.waitForSelector("text=Called by", { timeout: 30_000 });
    await page.locator(".run-facts a").click();
    await page.waitForSelector(".called-run", { timeout: 30_000 });
    expect(page.url()).toContain(`#/runs/${runId}`);
    await page.close();
  }, 120_000);
});
