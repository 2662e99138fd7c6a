import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, waitForRun } from "../helpers/server.js";

/**
 * The Workflows page in a real browser against a real `runyard up`: a saved workflow with its
 * schedule and a hook are listed, readable in the viewport of a laptop and of a phone, and Run
 * starts the saved workflow and opens its run.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

const saved = `name: nightly
inputs:
  HOOK_BRANCH: {type: string, max_length: 255}
schedule:
  cron: "30 2 * * *"
  timezone: Europe/Berlin
steps:
  - name: report
    action: cmd.run
    args:
      cmd: echo nightly report
`;

const sizes = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];

describe.skipIf(!haveBrowser)("the Workflows page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    await up.proc.waitFor("local runner connected");
    const save = await api(up.url, "POST", "/api/workflows", { name: "nightly", workflow: saved });
    expect(save.status, JSON.stringify(save.body)).toBe(201);
    const hook = await api(up.url, "POST", "/api/hooks", {
      name: "nightly-on-push",
      workflow: "nightly",
      vars: { HOOK_BRANCH: "$.ref" },
    });
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  for (const size of sizes) {
    it(`lists the saved workflow, its schedule and the hook, each row's name in view at ${size.width}x${size.height}`, async () => {
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/workflows`);
      const rows = [
        page.locator('tr[data-workflow="nightly"]'),
        page.locator('tr[data-schedule="nightly"]'),
        page.locator('tr[data-hook="nightly-on-push"]'),
      ];
      for (const row of rows) await row.waitFor();
      await expect.poll(() => rows[1]!.textContent()).toContain("30 2 * * *");
      expect(await rows[1]!.textContent()).toContain("Europe/Berlin");
      expect(await rows[2]!.textContent()).toContain("HOOK_BRANCH = $.ref");
      for (const row of rows) {
        const name = row.locator("th");
        await name.scrollIntoViewIfNeeded();
        const box = (await name.boundingBox())!;
        expect(box.x).toBeGreaterThanOrEqual(0);
        expect(box.x + box.width).toBeLessThanOrEqual(size.width);
      }
      // A phone scrolls the table, never the page sideways.
      const overflow = await page.evaluate<number>(
        "document.documentElement.scrollWidth - window.innerWidth",
      );
      expect(overflow).toBeLessThanOrEqual(0);
      await screenshot(page, `workflows-${size.name}`, "viewport");
      await page.close();
    });
  }

  it("runs a saved workflow from its row and opens the run", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/workflows`);
    await page.locator('tr[data-workflow="nightly"]').getByRole("button", { name: "Run" }).click();
    await page.waitForURL(/#\/runs\/run_/);
    const runId = page.url().split("#/runs/")[1]!;
    const run = await waitForRun(up.url, runId, isFinal);
    expect(run.status).toBe("success");
    const shown = await api<{ trigger: string; saved_workflow: string }>(up.url, "GET", `/api/runs/${runId}`);
    expect(shown.body).toMatchObject({ trigger: "manual", saved_workflow: "nightly" });
    await page.close();
  });

  it("lists a version saved over the admin's hook by someone else as pending, and Promote makes it live", async () => {
    const other = await api<{ token: string }>(up.url, "POST", "/api/tokens", {
      kind: "user",
      name: "teammate",
    });
    const pending = await api<{ version: number; promoted: boolean }>(
      up.url,
      "POST",
      "/api/workflows",
      { name: "nightly", workflow: saved.replace("nightly report", "nightly report, v2") },
      other.body.token,
    );
    expect(pending.body).toMatchObject({ version: 2, promoted: false });
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/workflows`);
    const row = page.locator('tr[data-workflow="nightly"]');
    await expect.poll(() => row.locator("td[data-live]").textContent()).toBe("1 · pending 2");
    await row.getByRole("button", { name: "Promote v2" }).click();
    await expect.poll(() => row.locator("td[data-live]").textContent()).toBe("2");
    expect(await row.getByRole("button", { name: /Promote/ }).count()).toBe(0);
    const shown = await api<{ live_version: number }>(up.url, "GET", "/api/workflows/nightly");
    expect(shown.body.live_version).toBe(2);
    await page.close();
  });
});
