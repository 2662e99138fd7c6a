import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api } from "../helpers/server.js";

/** The web UI on a fresh `runyard up`: served at `/`, log in and out in a real browser. */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

describe.skipIf(!haveBrowser)("the web UI's front door", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("serves the app at / with a CSP of its own, and its assets under /ui/", async () => {
    const page = await fetch(up.url);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    const html = await page.text();
    const script = /src="(\/ui\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(new URL(script!, up.url));
    expect(asset.status).toBe(200);
    expect(asset.headers.get("cache-control")).toContain("immutable");
    // The API stays JSON, with its own strict policy.
    expect((await api(up.url, "GET", "/api/nothing-here")).status).toBe(404);
  });

  it("logs in with a user's password, shows who is logged in, and logs out", async () => {
    const created = await api(up.url, "POST", "/api/users", {
      username: "ana",
      role: "member",
      tenant_id: "acme",
      password: "ana-password-123",
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(up.url);
    await screenshot(page, "login");
    await page.getByLabel("Username").fill("ana");
    await page.getByLabel("Password").fill("wrong-password");
    await page.getByRole("button", { name: "Log in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toMatch(/password/i);
    await page.getByLabel("Password").fill("ana-password-123");
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("navigation", { name: "Sections" }).waitFor();
    expect(await page.locator(".who").textContent()).toContain("ana");
    await page.getByRole("button", { name: "Log out" }).click();
    await page.getByRole("button", { name: "Log in" }).waitFor();
    await page.close();
  });

  it("logs in with the admin token of `runyard up`", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    expect(await page.locator(".who").textContent()).toContain("admin");
    await page.close();
  });
});
