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
 * A waiting approval step on the run page, in a real browser against a real `runyard up`: a
 * listed approver reads the message and approves with a comment; anyone else sees who may answer.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

const workflow = `name: release
steps:
  - name: build
    action: cmd.run
    args: {cmd: echo built}
  - name: go-live
    action: approval
    args:
      message: Ship 1.2 to production? The change log is in the build step's output.
      approvers: [rita]
  - name: ship
    action: cmd.run
    args: {cmd: echo shipped}
`;

/** An admin outside any tenant (where `runyard up` runs its runs), and a session token for them. */
async function person(username: string, role: "admin"): Promise<string> {
  const password = `${username}-password-123`;
  const made = await api(up.url, "POST", "/api/users", { username, role, password });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const login = await api<{ token: string }>(up.url, "POST", "/api/auth/login", { username, password }, "");
  return login.body.token;
}

describe.skipIf(!haveBrowser)("approval steps on the run page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("shows the message to a listed approver, who approves with a comment, and the run goes on", async () => {
    const [rita, max] = [await person("rita", "admin"), await person("max", "admin")];
    const runId = await submit(up.url, workflow);
    await waitForRun(up.url, runId, (run) => run.steps.some((s) => s.status === "waiting"));

    // Someone who may not answer reads who may, and gets no buttons (a phone's width).
    const phone = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(phone, up.url, max);
    await phone.goto(`${up.url}/#/runs/${runId}`);
    const seen = phone.getByRole("region", { name: "Approval go-live" });
    await seen.getByText("Ship 1.2 to production?", { exact: false }).waitFor();
    await seen.getByText("Only rita may answer", { exact: false }).waitFor();
    expect(await seen.getByRole("button").count()).toBe(0);
    await screenshot(phone, "run-approval-phone");
    await phone.close();

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    const errors = consoleErrors(page);
    await logIn(page, up.url, rita);
    await page.goto(`${up.url}/#/runs/${runId}`);
    const gate = page.getByRole("region", { name: "Approval go-live" });
    await gate.getByText("You may answer", { exact: false }).waitFor();
    expect(await page.getByRole("cell", { name: "waiting" }).count()).toBe(1);
    await screenshot(page, "run-approval");
    await gate.getByLabel("Comment (optional)").fill("change log read");
    await gate.getByRole("button", { name: "Approve" }).click();
    await page.locator(".run-header h1 span").getByText("success").waitFor({ timeout: 30_000 });
    await page.getByText("Approval go-live approved by rita: “change log read”").waitFor();
    expect(await page.getByRole("region", { name: "Approval go-live" }).count()).toBe(0);
    await screenshot(page, "run-approval-answered");
    expect(errors).toEqual([]);
  });
});
