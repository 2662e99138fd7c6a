import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  removeTestObjects,
  requireDocker,
  testLabel,
  testRunLabel,
} from "../helpers/docker.js";
import { api } from "../helpers/server.js";

/**
 * The bots pages in a real browser against a real `runyard up` whose local runner has Docker: a
 * bot started from the page in image mode runs, shows in the live list, its page shows its log
 * lines as they come, and it stops from the page.
 */

const haveBrowser = requireBrowser();
const haveDocker = await requireDocker();
const run = `web-bots-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();
let up: Up;
let browser: Browser;
let image: string;
const botIds: string[] = [];

describe.skipIf(!haveBrowser || !haveDocker)("the bots pages", () => {
  beforeAll(async () => {
    const base = await busyboxImage();
    const dir = tempDir("runyard-web-bot-");
    // A shell as PID 1 ignores SIGTERM unless it traps it: this bot stops at once, as a real one should.
    const script =
      'trap "exit 0" TERM; echo "web bot up"; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1 & wait $!; done';
    writeFileSync(join(dir, "Dockerfile"), `FROM ${base}\nCMD ["sh", "-c", ${JSON.stringify(script)}]\n`);
    image = `runyard-test-web-bot-${run}:1`;
    await engine.build(dir, image, () => {}, { [testLabel]: "1", [testRunLabel]: run });
    [up, browser] = await Promise.all([startUp({ RUNYARD_BOT_NETWORK: "none" }), launchBrowser()]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
    for (const id of botIds) {
      const containers = await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.bot=${id}`] },
      });
      for (const c of containers) await engine.remove(c.Id);
    }
    await removeTestObjects(run);
  });

  it("starts a bot in image mode, lists it running, follows its logs live and stops it", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    page.on("dialog", (dialog) => void dialog.accept());
    await logIn(page, up.url);
    await page.goto(`${up.url}#/bots`);
    const form = page.getByRole("form", { name: "Start a bot" });
    await form.getByRole("radio", { name: "Image" }).check();
    await form.getByLabel("Name").fill("web-bot");
    await form.getByLabel("Image reference").fill(image);
    await screenshot(page, "bots-start");
    await form.getByRole("button", { name: "Start bot" }).click();

    // The list polls: the bot appears and turns running with its image.
    const row = page.getByRole("table", { name: "Bots" }).getByRole("row").filter({ hasText: "web-bot" });
    await row.getByText("running").waitFor({ timeout: 60_000 });
    await row.getByText(image).waitFor();
    const bot = await api<{ id: string; state: string }>(up.url, "GET", "/api/bots/web-bot");
    botIds.push(bot.body.id);
    expect(bot.body.state).toBe("running");
    await screenshot(page, "bots-list");

    // Its page: the status, and the log lines, the later ones arriving while the page is open.
    await row.getByRole("link", { name: "web-bot" }).click();
    await page.getByTestId("bot-state").getByText("running").waitFor();
    const logs = page.getByRole("log", { name: "Logs" });
    await logs.getByText("web bot up").waitFor({ timeout: 30_000 });
    const shown = (await logs.textContent()) ?? "";
    const ticks = [...shown.matchAll(/tick (\d+)/g)].map((m) => Number(m[1]));
    const next = Math.max(0, ...ticks) + 2;
    const lines = async () => ((await logs.textContent()) ?? "").split("\n");
    await expect.poll(lines, { timeout: 30_000 }).toContain(`tick ${next}`);
    await screenshot(page, "bots-page");

    await page.getByRole("tab", { name: "Build output" }).click();
    await page.getByRole("log", { name: "Build output" }).waitFor();
    await page.getByRole("tab", { name: "Logs" }).click();

    await page.getByRole("button", { name: "Stop web-bot" }).click();
    await page.getByTestId("bot-state").getByText("stopped").waitFor({ timeout: 30_000 });
    const containers = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.bot=${bot.body.id}`] },
    });
    expect(containers).toEqual([]);
    await screenshot(page, "bots-stopped");

    await page.getByRole("button", { name: "Remove web-bot" }).click();
    await page.waitForURL((url) => url.hash === "#/bots");
    await page.getByText("No bots yet.").waitFor();
    const removed = await api(up.url, "GET", "/api/bots/web-bot");
    expect(removed.status).toBe(404);
    await page.close();
  }, 180_000);

  it("says what is wrong with a start the server refuses, and fits a phone", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/bots`);
    const form = page.getByRole("form", { name: "Start a bot" });
    await form.getByLabel("Name", { exact: true }).fill("bad name!");
    await form.getByLabel("Content").fill('print("hi")\n');
    await form.getByRole("button", { name: "Start bot" }).click();
    await form
      .getByRole("alert")
      .getByText(/bot name/)
      .waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, "bots-phone");
    expect((await api<{ bots: unknown[] }>(up.url, "GET", "/api/bots")).body.bots).toEqual([]);
    await page.close();
  });
});
