import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logIn, requireBrowser, screenshot, type Up } from "../helpers/browser.js";
import { requireDocker } from "../helpers/docker.js";
import { api } from "../helpers/server.js";
import { startWebBotUp, type WebBotUp } from "../helpers/web-bot-up.js";

/**
 * The bot page's health, versions and environment in a real browser against a real `runyard up`
 * whose local runner has Docker: the health and last probe shown, a variable set as a secret
 * (masked, never shown), the bot updated safely by it, and a rollback from the versions table.
 */

const haveBrowser = requireBrowser();
const haveDocker = await requireDocker();
const run = `web-bot-health-${process.pid}-${Date.now().toString(36)}`;
let up: Up;
let browser: Browser;
let image: string;
let bench: WebBotUp | undefined;
const botIds: string[] = [];

describe.skipIf(!haveBrowser || !haveDocker)("the bot page's health, versions and environment", () => {
  beforeAll(async () => {
    const script = 'trap "exit 0" TERM; echo "up FOO=$FOO"; while true; do sleep 1 & wait $!; done';
    ({ up, browser, image } = bench = await startWebBotUp(run, script));
  }, 120_000);

  afterAll(() => bench?.close(botIds));

  it("shows health and the last probe, sets a secret variable through a safe update, and rolls back", async () => {
    const body = {
      name: "healthy-bot",
      image,
      env: { FOO: "one" },
      health: { cmd: "echo probe-says-ok", interval_ms: 1000 },
    };
    // The local runner says it has Docker once it has registered: until then a start is refused.
    botIds.push(await bench!.startBot(body));
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on("dialog", (dialog) => void dialog.accept());
    await logIn(page, up.url);
    await page.goto(`${up.url}#/bots/healthy-bot`);
    await page.getByTestId("bot-state").getByText("running").waitFor({ timeout: 90_000 });
    await page.getByTestId("bot-health").getByText("healthy").waitFor();
    await page.getByText("Last health probe").click();
    await page.getByTestId("bot-probe").getByText("probe-says-ok").waitFor();

    const env = page.getByRole("table", { name: "Environment" });
    await env.getByText("FOO").waitFor();
    const form = page.getByRole("form", { name: "Set a variable" });
    const secret = `web-secret-${run}`;
    await form.getByLabel("Name").fill("API_PASS");
    await form.getByLabel("Value").fill(secret);
    await form.getByLabel("Secret").check();
    await form.getByRole("button", { name: "Set" }).click();
    await env.getByText("API_PASS").waitFor({ timeout: 90_000 });
    await expect.poll(async () => (await env.textContent()) ?? "", { timeout: 30_000 }).toContain("***");
    expect(await page.content()).not.toContain(secret);
    const versions = page.getByRole("table", { name: "Versions" });
    await versions.getByText("2 (current)").waitFor({ timeout: 30_000 });
    await screenshot(page, "bot-health-env");

    await page.getByRole("button", { name: "Roll back" }).click();
    await versions.getByText("3 (current)").waitFor({ timeout: 90_000 });
    await versions.getByText("rollback of 1").waitFor();
    const bot = await api<{ version: number; state: string }>(up.url, "GET", "/api/bots/healthy-bot");
    expect(bot.body).toMatchObject({ version: 3, state: "running" });
    const envNow = await api<{ env: { name: string }[] }>(up.url, "GET", "/api/bots/healthy-bot/env");
    expect(envNow.body.env.map((e) => e.name)).toEqual(["FOO"]);
    await screenshot(page, "bot-versions");
    await page.close();
  }, 300_000);
});
