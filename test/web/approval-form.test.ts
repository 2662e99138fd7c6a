import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  consoleErrors,
  launchBrowser,
  logIn,
  requireBrowser,
  screenshot,
  startUp,
  type Up,
} from "../helpers/browser.js";
import { api, submit, waitForRun } from "../helpers/server.js";

/**
 * An approval's form on the run page, in a real browser against a real `runyard up`: the first
 * approver fills it in (a wrong answer is refused with the server's words), a second approves
 * the same values, and the run goes on with them as its variables. A retried step's attempts
 * show on the same page.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

const workflow = `name: release
steps:
  - name: flaky
    action: shell.run
    retry: {attempts: 2, backoff: fixed, delay: 0.2}
    args:
      script: |
        if [ ! -e /tmp/flaky-once ]; then touch /tmp/flaky-once; echo "first attempt fails"; exit 7; fi
        echo "second attempt passes"
  - name: go-live
    action: approval
    args:
      message: Ship 1.2?
      approvers: [rita, sam]
      required: 2
      inputs:
        REGION: {type: choice, options: [eu, us], required: true, description: where it ships}
        COUNT: {type: number, default: "2"}
        CANARY: {type: boolean}
  - name: ship
    action: shell.run
    args: {script: 'echo "to $REGION x$COUNT canary=$CANARY"'}
`;

async function person(username: string): Promise<string> {
  const password = `${username}-password-123`;
  const made = await api(up.url, "POST", "/api/users", { username, role: "admin", password });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return (await api<{ token: string }>(up.url, "POST", "/api/auth/login", { username, password }, "")).body
    .token;
}

describe.skipIf(!haveBrowser)("an approval's form on the run page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("takes the first approver's values, a second approval, and shows the retries", async () => {
    const [rita, sam] = [await person("rita"), await person("sam")];
    const runId = await submit(up.url, workflow);
    await waitForRun(up.url, runId, (run) => run.steps.some((s) => s.status === "waiting"), 60_000);

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = consoleErrors(page);
    await logIn(page, up.url, rita);
    await page.goto(`${up.url}/#/runs/${runId}`);
    const gate = page.getByRole("region", { name: "Approval go-live" });
    await gate.getByText("0 of 2 approvals").waitFor();
    const retries = page.getByRole("list", { name: "Retries" });
    await retries
      .getByText("attempt 1 of 2 failed (exit 7); next attempt after 200 ms", { exact: false })
      .waitFor();

    // Without the required choice the server refuses, and the page says why.
    await gate.getByRole("button", { name: "Approve" }).click();
    await gate
      .getByRole("alert")
      .getByText("input REGION is required (one of eu, us)", { exact: false })
      .waitFor();

    await gate.getByLabel("REGION (required)", { exact: false }).selectOption("us");
    await gate.getByLabel("COUNT").fill("4");
    await gate.getByLabel("CANARY").check();
    await screenshot(page, "run-approval-form");
    await gate.getByRole("button", { name: "Approve" }).click();
    await gate.getByText("1 of 2 approvals: rita").waitFor();
    // rita counts once: she has no buttons now.
    expect(await gate.getByRole("button", { name: "Approve" }).count()).toBe(0);
    await page.close();

    const second = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await logIn(second, up.url, sam);
    await second.goto(`${up.url}/#/runs/${runId}`);
    const samGate = second.getByRole("region", { name: "Approval go-live" });
    const filled = samGate.getByRole("definition");
    await filled.getByText("us", { exact: true }).waitFor();
    // The form was filled in by rita: sam approves her values and fills in nothing.
    expect(await samGate.getByLabel("COUNT").count()).toBe(0);
    await samGate.getByRole("button", { name: "Approve" }).click();
    await second.locator(".run-header h1 span").getByText("success").waitFor({ timeout: 30_000 });
    await second.getByText("Approval go-live approved by rita, sam").waitFor();
    await screenshot(second, "run-approval-form-answered");
    const run = await waitForRun(up.url, runId, (r) => r.status === "success");
    expect(run.vars).toMatchObject({ REGION: "us", COUNT: "4", CANARY: "true" });
    // The one refusal asked for above is the browser's only complaint.
    expect(errors).toEqual([expect.stringMatching(/status of 400 .*\/steps\/go-live\/approve\)$/)]);
  }, 120_000);
});
