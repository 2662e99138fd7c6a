import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, type Proc, startRunner } from "../helpers/server.js";

/**
 * Seed 000's runner list in a real browser against a real `runyard up`: the local runner is
 * there, a second runner appears without a reload, and goes offline when it stops.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;
let second: Proc | undefined;

describe.skipIf(!haveBrowser)("the Runners page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
  }, 60_000);

  afterAll(async () => {
    await second?.kill();
    await browser?.close();
    await up?.proc.kill();
  });

  it("lists the local runner, shows a second one live, and marks it offline when it stops", async () => {
    const listed = await api<{ id: string }[]>(up.url, "GET", "/api/runners");
    const local = listed.body.find((runner) => /-local-[0-9a-z]{6}$/.test(runner.id));
    expect(local, JSON.stringify(listed.body)).toBeDefined();

    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.getByRole("link", { name: "Runners" }).click();
    const localRow = page.locator(`tr[data-runner="${local!.id}"]`);
    await localRow.waitFor();
    expect(await localRow.locator("[data-status]").getAttribute("data-status")).toBe("connected");
    const headers = await page.getByRole("columnheader").allTextContents();
    expect(headers).toEqual([
      "ID",
      "Group",
      "Status",
      "Hostname",
      "CPUs",
      "Memory",
      "Connected at",
      "Labels",
      "Running jobs",
    ]);

    // A second runner joins with a runner token of its own: the page shows it without a reload.
    const token = await api<{ token: string }>(up.url, "POST", "/api/tokens", {
      kind: "runner",
      name: "web test runner",
    });
    expect(token.status, JSON.stringify(token.body)).toBe(201);
    // A mark in the page's memory: a reload would lose it.
    await page.evaluate(() => {
      (globalThis as { notReloaded?: boolean }).notReloaded = true;
    });
    second = await startRunner(up.url, token.body.token, { id: "web-second", labels: "gpu,fast" });
    const secondStatus = page.locator('tr[data-runner="web-second"] [data-status]');
    await page.locator('tr[data-runner="web-second"] [data-status="connected"]').waitFor({ timeout: 15_000 });
    expect(await page.locator('tr[data-runner="web-second"]').textContent()).toMatch(/gpu.*fast/);
    await screenshot(page, "web-runners");

    // It stops: the same page shows it offline.
    await second.kill();
    second = undefined;
    await page.locator('tr[data-runner="web-second"] [data-status="offline"]').waitFor({ timeout: 15_000 });
    expect(await secondStatus.getAttribute("data-status")).toBe("offline");
    expect(await localRow.locator("[data-status]").getAttribute("data-status")).toBe("connected");
    // The same document all along: it was never reloaded.
    expect(await page.evaluate(() => (globalThis as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await page.close();
  }, 120_000);

  it("tells a tenant with no runner how to start one", async () => {
    const created = await api(up.url, "POST", "/api/users", {
      username: "ana",
      role: "member",
      tenant_id: "acme",
      password: "ana-password-123",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const session = await api<{ token: string }>(up.url, "POST", "/api/auth/login", {
      username: "ana",
      password: "ana-password-123",
    });
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url, session.body.token);
    await page.goto(`${up.url}/#/runners`);
    const empty = page.getByRole("region", { name: "No runners" });
    await empty.waitFor();
    const text = await empty.textContent();
    expect(text).toContain("runyard token create --runner");
    expect(text).toContain(`runyard runner --server ${new URL(up.url).origin} --token T`);
    await screenshot(page, "web-runners-empty-phone");
    await page.close();
  }, 60_000);
});
