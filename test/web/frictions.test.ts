import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
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
import { api, isFinal, stepDir, submit, waitForRun } from "../helpers/server.js";

/**
 * What users hit on the web UI, checked as they see it: what is inside the window at a laptop's
 * 1280x800 and a phone's 390x844 (element boxes against the viewport), not what xterm's buffer
 * or a full-page screenshot holds.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;
/** The folder of the test's gates, the gated step's cwd (a `stepDir`: the sandbox shows it). */
const gates = stepDir();
const sizes = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
] as const;
const dateFormat = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/;

/**
 * Four steps: 150 lines on stdout then one on stderr, a step allowed to fail, an export, and a
 * last step that waits for the test's gate file before it prints its last line.
 */
const runWorkflow = (gate: string) => `name: viewport-run
vars:
  GREETING: hello
inventory:
  hosts:
    local: {}
steps:
  - name: noisy
    targets: [local]
    action: shell.run
    args:
      script: |
        for i in $(seq 1 150); do echo "noisy-line-$i"; done
        echo "an-error-line" >&2
  - name: may-fail
    targets: [local]
    action: shell.run
    continue_on_error: true
    args:
      script: exit 3
  - name: produce
    targets: [local]
    action: shell.run
    args:
      export_vars: true
      script: echo "BOPS_EXPORT:RESULT=done"
  - name: last
    targets: [local]
    action: shell.run
    args:
      cwd: ${gates}
      script: |
        echo "waiting-for-gate"
        while [ ! -f ${join(gates, gate)} ]; do sleep 0.05; done
        for i in $(seq 1 40); do echo "tail-line-$i"; done
        echo "the-end"
`;

/** The box of the terminal row showing `line` (xterm draws one element per visible row). */
async function terminalRowBox(page: Page, line: string) {
  return page.evaluate((wanted) => {
    const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): ArrayLike<unknown> } })
      .document;
    const rows = Array.from(doc.querySelectorAll('[data-testid="terminal"] .xterm-rows > div')) as Array<{
      textContent: string | null;
      getBoundingClientRect(): { top: number; bottom: number; left: number; right: number };
    }>;
    const row = rows.find((element) => (element.textContent ?? "").trimEnd() === wanted);
    if (!row) return null;
    const { top, bottom, left, right } = row.getBoundingClientRect();
    return { top, bottom, left, right };
  }, line);
}

/** Waits until the row showing `line` is drawn wholly inside the window. */
async function lineInViewport(page: Page, line: string, timeout = 30_000): Promise<void> {
  const { width, height } = page.viewportSize()!;
  await expect
    .poll(
      async () => {
        const box = await terminalRowBox(page, line);
        return box !== null && box.top >= 0 && box.bottom <= height && box.left >= 0 && box.right <= width;
      },
      { timeout, interval: 100 },
    )
    .toBe(true);
}

/** The foreground colour (xterm's palette index) of the first cell of the buffer line `line`. */
function lineColour(page: Page, line: string): Promise<number> {
  return page.getByTestId("terminal").evaluate((element, wanted) => {
    type Line = { translateToString(trim: boolean): string; getCell(x: number): { getFgColor(): number } };
    const buffer = (
      element as unknown as {
        terminal: { buffer: { active: { length: number; getLine(row: number): Line } } };
      }
    ).terminal.buffer.active;
    for (let row = 0; row < buffer.length; row++) {
      const found = buffer.getLine(row);
      if (found.translateToString(true) === wanted) return found.getCell(0).getFgColor();
    }
    return -1;
  }, line);
}

/**
 * No page-level horizontal overflow, and every table either fits its box or scrolls inside it
 * (its box inside the window): no cell is cut off out of reach.
 */
async function tablesFit(page: Page): Promise<{ pageOverflow: number; cutTables: string[] }> {
  return page.evaluate(() => {
    const win = globalThis as unknown as {
      innerWidth: number;
      getComputedStyle(element: unknown): { overflowX: string };
      document: { documentElement: { scrollWidth: number }; querySelectorAll(s: string): ArrayLike<unknown> };
    };
    type Box = {
      scrollWidth: number;
      clientWidth: number;
      parentElement: Box | null;
      getAttribute(name: string): string | null;
      getBoundingClientRect(): { left: number; right: number };
    };
    const cutTables: string[] = [];
    for (const table of Array.from(win.document.querySelectorAll("table")) as Box[]) {
      const name = table.getAttribute("aria-label") ?? "a table";
      // The nearest box that scrolls sideways, else the table itself.
      let box: Box = table;
      for (let up = table.parentElement; up; up = up.parentElement)
        if (["auto", "scroll"].includes(win.getComputedStyle(up).overflowX)) {
          box = up;
          break;
        }
      const { left, right } = box.getBoundingClientRect();
      const scrolls = box !== table && win.getComputedStyle(box).overflowX !== "visible";
      if (left < 0 || right > win.innerWidth + 0.5) cutTables.push(`${name}: box beyond the window`);
      else if (!scrolls && table.scrollWidth > table.clientWidth) cutTables.push(`${name}: cut off`);
    }
    return { pageOverflow: win.document.documentElement.scrollWidth - win.innerWidth, cutTables };
  });
}

describe.skipIf(!haveBrowser)("the web UI where users hit frictions", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  for (const size of sizes) {
    it(`shows the end of a run in the window on open and while live (${size.width}x${size.height})`, async () => {
      const gate = `gate-${size.name}`;
      const runId = await submit(up.url, runWorkflow(gate), { GREETING: "hi" });
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      const errors = consoleErrors(page);
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/runs/${runId}`);
      // Live: the last line so far is in the window, with the run's status.
      await lineInViewport(page, "waiting-for-gate");
      const status = page.locator(".run-header h1 span");
      expect(await status.textContent()).toBe("running");
      writeFileSync(join(gates, gate), "");
      await lineInViewport(page, "the-end");
      await status.getByText("success").waitFor({ timeout: 30_000 });
      await lineInViewport(page, "the-end");
      await screenshot(page, `run-page-live-end-${size.name}`, "viewport");

      // Opened again once it has ended: the end is in the window at once.
      await page.reload();
      await lineInViewport(page, "the-end");

      // A header line before each step's output, and stderr in red (palette index 1).
      await expect.poll(() => lineColour(page, "── noisy on local ──")).toBeGreaterThanOrEqual(0);
      expect(await lineColour(page, "── last on local ──")).toBeGreaterThanOrEqual(0);
      expect(await lineColour(page, "an-error-line")).toBe(1);
      expect(await lineColour(page, "noisy-line-150")).not.toBe(1);

      // The step allowed to fail says so under a run that succeeded.
      await page.getByRole("cell", { name: "failed (allowed)" }).waitFor();
      // Inputs apart from exports.
      const inputs = page.getByRole("table", { name: "Variables", exact: true });
      const exported = page.getByRole("table", { name: "Exported variables" });
      await inputs.getByRole("row", { name: "GREETING hi" }).waitFor();
      await exported.getByRole("row", { name: "RESULT done" }).waitFor();
      expect(await exported.getByText("GREETING").count()).toBe(0);
      // Dates read as one format.
      expect(await page.locator(".run-facts dt:text-is('Started') + dd").textContent()).toMatch(dateFormat);
      expect(await tablesFit(page)).toEqual({ pageOverflow: 0, cutTables: [] });
      expect(errors).toEqual([]);
      expect((await waitForRun(up.url, runId, isFinal)).status).toBe("success");
      await page.close();
    }, 120_000);
  }

  it("serves /favicon.ico without a token, and no page logs a console error at either size", async () => {
    const icon = await fetch(new URL("/favicon.ico", up.url));
    expect(icon.status).toBe(200);
    expect(icon.headers.get("content-type")).toContain("image/x-icon");
    expect([...new Uint8Array(await icon.arrayBuffer()).slice(0, 4)]).toEqual([0, 0, 1, 0]);
    const runId = await submit(up.url, runWorkflow("gate-console").replace("while", "# while"));
    await waitForRun(up.url, runId, isFinal);
    for (const size of sizes) {
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      const errors = consoleErrors(page);
      await logIn(page, up.url);
      for (const [hash, ready] of [
        ["#/run", "Run"],
        ["#/runs", "Runs"],
        [`#/runs/${runId}`, "Output"],
        ["#/agents", "Agents"],
        ["#/bots", "Bots"],
        ["#/runners", "Runners"],
      ] as const) {
        await page.goto(`${up.url}/${hash}`);
        await page.getByRole("heading", { name: ready }).first().waitFor();
        // Whatever the page asks for first has answered.
        await page.waitForLoadState("networkidle");
        expect(await tablesFit(page), `${hash} at ${size.name}`).toEqual({ pageOverflow: 0, cutTables: [] });
      }
      await page.getByRole("button", { name: "Log out" }).click();
      await page.getByRole("button", { name: "Log in" }).waitFor();
      expect(errors, size.name).toEqual([]);
      await page.close();
    }
  }, 120_000);

  it("answers 404 to a path no route serves, token or not; existing API routes still need one", async () => {
    const unknown = await api<{ error: { code: string; hint: string } }>(
      up.url,
      "GET",
      "/no-such-page",
      undefined,
      "",
    );
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("NOT_FOUND");
    expect(unknown.body.error.hint).toContain("/openapi.json");
    expect((await api(up.url, "GET", "/api/no-such-route", undefined, "")).status).toBe(404);
    expect((await api(up.url, "GET", "/api/runs", undefined, "")).status).toBe(401);
  });

  it("logs out of a pasted API token with a 2xx that says the token stays valid", async () => {
    const answer = await api<{ logged_out: boolean; message: string; hint: string }>(
      up.url,
      "POST",
      "/api/auth/logout",
    );
    expect(answer.status).toBe(200);
    expect(answer.body.logged_out).toBe(false);
    expect(answer.body.message).toContain("stays valid");
    expect(answer.body.hint).toContain("token revoke");
    expect((await api(up.url, "GET", "/api/auth/whoami")).status).toBe(200);
  });

  it("shows who started a run by the user's name, or the token's name when no user owns it", async () => {
    const created = await api(up.url, "POST", "/api/users", {
      username: "noor",
      role: "admin",
      password: "noor-password-123",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const login = await api<{ token: string }>(up.url, "POST", "/api/auth/login", {
      username: "noor",
      password: "noor-password-123",
    });
    const personal = await api<{ token: string }>(
      up.url,
      "POST",
      "/api/tokens",
      { kind: "user", name: "noor-laptop" },
      login.body.token,
    );
    expect(personal.status, JSON.stringify(personal.body)).toBe(201);
    const named = await api<{ token: string }>(up.url, "POST", "/api/tokens", {
      kind: "user",
      name: "ci-bot",
    });
    expect(named.status, JSON.stringify(named.body)).toBe(201);
    const flow = (name: string) =>
      `name: ${name}\ninventory:\n  hosts:\n    local: {}\nsteps:\n  - name: s\n    targets: [local]\n    action: cmd.run\n    args:\n      cmd: echo hi\n`;
    const byToken = async (name: string, token: string) => {
      const answer = await api<{ run_id: string }>(
        up.url,
        "POST",
        "/api/runs",
        { workflow: flow(name) },
        token,
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      return answer.body.run_id;
    };
    await byToken("by-noor", personal.body.token);
    await byToken("by-noor-session", login.body.token);
    await byToken("by-ci-bot", named.body.token);

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url, named.body.token);
    // No user owns this token: the header names the token.
    expect(await page.locator(".who").textContent()).toBe("ci-bot");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("button", { name: "Log in" }).waitFor();
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs`);
    const who = async (name: string) => {
      const row = page.getByRole("row").filter({ has: page.getByRole("link", { name, exact: true }) });
      await row.waitFor();
      return row.locator("td").nth(4).textContent();
    };
    expect(await who("by-noor")).toBe("noor");
    expect(await who("by-noor-session")).toBe("noor");
    expect(await who("by-ci-bot")).toBe("ci-bot");
    const started = await page
      .getByRole("row")
      .filter({ hasText: "by-noor" })
      .first()
      .locator("td")
      .nth(5)
      .textContent();
    expect(started).toMatch(dateFormat);
    await page.getByRole("link", { name: "by-noor", exact: true }).click();
    expect(await page.locator(".run-facts dt:text-is('Who') + dd").textContent()).toBe("noor");
    // The runners page writes dates the same way.
    await page.goto(`${up.url}/#/runners`);
    const connected = page.getByRole("table", { name: "Runners" }).locator("time").first();
    expect(await connected.textContent()).toMatch(dateFormat);
    await page.close();
  }, 60_000);

  it("does not push an agent's branch unless asked, as the CLI", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/agents`);
    const push = page.getByLabel("Push the branch");
    await push.waitFor();
    expect(await push.isChecked()).toBe(false);
    await page.close();
  });

  it("says in words why a queued run waits: tenant, group, labels and what would serve it, inside a phone's window", async () => {
    const runId = await submit(
      up.url,
      "name: nowhere\ninventory:\n  hosts:\n    far: {group: nowhere, labels: [gpu]}\nsteps:\n  - name: s\n    targets: [far]\n    action: cmd.run\n    args:\n      cmd: echo hi\n",
    );
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${runId}`);
    const reason = page.locator(".waiting-for li").first();
    await reason.waitFor();
    const text = (await reason.textContent()) ?? "";
    expect(text).toContain("group nowhere");
    expect(text).toContain("gpu");
    expect(text).toMatch(/runner/);
    const box = await reason.boundingBox();
    expect(box && box.x >= 0 && box.x + box.width <= 390 && box.y + box.height <= 844).toBe(true);
    await api(up.url, "POST", `/api/runs/${runId}/cancel`);
    await page.close();
  });
});
