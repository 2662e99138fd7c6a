import type { Browser, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { logIn, requireBrowser, screenshot, type Up } from "../helpers/browser.js";
import { requireDocker } from "../helpers/docker.js";
import { api } from "../helpers/server.js";
import { startWebBotUp, type WebBotUp } from "../helpers/web-bot-up.js";

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
let bench: WebBotUp | undefined;
const botIds: string[] = [];

const sizes = [
  { width: 1280, height: 800, tag: "wide" },
  { width: 390, height: 844, tag: "phone" },
] as const;

describe.skipIf(!haveBrowser || !haveDocker)("the bots pages", () => {
  beforeAll(async () => {
    // A shell as PID 1 ignores SIGTERM unless it traps it: this bot stops at once, as a real one should.
    const script =
      'trap "exit 0" TERM; echo "web bot up"; echo "web bot warns" >&2; i=0; while true; do i=$((i+1)); echo "tick $i"; sleep 1 & wait $!; done';
    // Limits the list can name, and a sample each second for its sparklines.
    ({ up, browser, image } = bench = await startWebBotUp(run, script, {
      RUNYARD_BOT_MEMORY_MB: "64",
      RUNYARD_BOT_STATS_SECS: "1",
    }));
  }, 120_000);

  afterAll(() => bench?.close(botIds));

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
    const lines = () => logs.locator(".bot-log-text").allTextContents();
    const ticks = (await lines()).flatMap((line) => /^tick (\d+)$/.exec(line)?.[1] ?? []).map(Number);
    const next = Math.max(0, ...ticks) + 2;
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

  it.each(sizes)(
    "at $width x $height: lists its limits and a memory sparkline; frames its log with times, a marked stderr line and search hits; edits env and says what a version changed",
    async (size) => {
      const name = `shown-${size.tag}`;
      const value = `value-${size.tag}-${run}`;
      // Healthy at its first probe (made at once; the next in 10 minutes): the env change below
      // switches versions when the new one passes it, not after min_ready_secs (10 s) of running.
      const health = { cmd: "true", interval_ms: 600_000 };
      await startBot({ name, image, env: { FOO: "one", BAR: "kept" }, health });
      // The list's sparkline reads the samples as the page opens, then every 15 s: opened once the
      // server holds two (5 s apart), it draws them at once rather than at its next poll.
      const stored = async () =>
        (await api<{ samples?: unknown[] }>(up.url, "GET", `/api/bots/${name}/stats?since=1h`)).body.samples
          ?.length ?? 0;
      await expect.poll(stored, { timeout: 60_000, interval: 500 }).toBeGreaterThanOrEqual(2);
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}#/bots`);

      // The list: memory and CPU against their limits, and the last hour of memory as a line.
      const row = page.getByRole("table", { name: "Bots" }).getByRole("row").filter({ hasText: name });
      await row.getByText("running").waitFor({ timeout: 90_000 });
      await row.getByText("of 64.0 MiB", { exact: true }).waitFor();
      await row.getByText(/of \d+(\.\d+)? CPUs?$/).waitFor();
      const spark = row.locator(`svg[data-testid="bot-sparkline-${name}"]`);
      await expect
        .poll(async () => ((await spark.count()) > 0 ? Number(await spark.getAttribute("data-points")) : 0), {
          timeout: 60_000,
          interval: 500,
        })
        .toBeGreaterThanOrEqual(2);
      expect(await spark.getAttribute("aria-label")).toContain("of 64.0 MiB");
      const points = (await spark.locator("polyline").getAttribute("points")) ?? "";
      expect(points.trim().split(" ").length).toBeGreaterThanOrEqual(2);
      if (size.tag === "wide") await screenshot(page, "web-bots-list", "viewport");

      // The page's log: framed, its first line inside the frame, each line with its time.
      await row.getByRole("link", { name, exact: true }).click();
      await page.getByTestId("bot-state").getByText("running").waitFor({ timeout: 30_000 });
      const logs = page.getByRole("log", { name: "Logs" });
      const warns = logs.locator(".bot-log-line").filter({ hasText: "web bot warns" });
      await warns.waitFor({ timeout: 30_000 });
      const frame = await styleOf(logs, ["borderTopWidth", "borderTopStyle", "paddingTop"]);
      const border = Number.parseFloat(frame.borderTopWidth!);
      expect(border).toBeGreaterThanOrEqual(1);
      expect(frame.borderTopStyle).not.toBe("none");
      expect(Number.parseFloat(frame.paddingTop!)).toBeGreaterThanOrEqual(4);
      // The pane follows the end while the reader is there; scrolled up, it stays put as lines
      // arrive (the bot ticks each second). The pane is made short for this so that it scrolls
      // before a few dozen ticks have come.
      const ticks = logs.locator(".bot-log-text").filter({ hasText: /^tick \d+$/ });
      const nextTick = async () => {
        const seen = await ticks.count();
        await expect.poll(() => ticks.count(), { timeout: 30_000 }).toBeGreaterThan(seen);
      };
      const gap = () => logs.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
      await logs.evaluate((el) => {
        el.style.minHeight = "0";
        el.style.maxHeight = "3rem";
        el.scrollTop = el.scrollHeight;
      });
      await nextTick();
      expect(await logs.evaluate((el) => el.scrollHeight > el.clientHeight)).toBe(true);
      expect(await gap()).toBeLessThan(2);
      await logs.evaluate((el) => el.scrollTo(0, 0));
      await nextTick();
      expect(await logs.evaluate((el) => el.scrollTop)).toBe(0);
      // Back to its own size, scrolled to its top, and measured there in one go: a tick arriving
      // between a scroll and a measure, with the whole log then in view, has the pane follow the
      // end again (a run measured the first line 56 px above the pane).
      const { pane, first } = await logs.evaluate((el) => {
        el.style.minHeight = "";
        el.style.maxHeight = "";
        el.scrollTo(0, 0);
        const box = (rect: { x: number; y: number; width: number; height: number }) => ({
          x: rect.x,
          y: rect.y,
          width: rect.width,
          height: rect.height,
        });
        const line = el.querySelector(".bot-log-line");
        if (!line) throw new Error("the log has no line");
        return { pane: box(el.getBoundingClientRect()), first: box(line.getBoundingClientRect()) };
      });
      expect(first.y).toBeGreaterThanOrEqual(pane.y + border);
      expect(first.y + first.height).toBeLessThanOrEqual(pane.y + pane.height - border);
      expect(first.x).toBeGreaterThanOrEqual(pane.x);
      expect(first.x + first.width).toBeLessThanOrEqual(pane.x + pane.width);

      // The stderr line: its class, its colour and a "stderr" tag (not colour alone), and its time.
      expect(await warns.getAttribute("class")).toContain("stream-stderr");
      await warns.getByText("stderr", { exact: true }).waitFor();
      expect((await styleOf(warns, ["color"])).color).toBe("rgb(198, 40, 40)");
      const time = warns.locator("time");
      expect(await time.textContent()).toMatch(/^\d\d:\d\d:\d\d$/);
      expect(Date.now() - Date.parse((await time.getAttribute("datetime")) ?? "")).toBeLessThan(15 * 60_000);
      const upLine = logs.locator(".bot-log-line").filter({ hasText: "web bot up" });
      expect(await upLine.getAttribute("class")).toContain("stream-stdout");
      expect(await upLine.locator(".bot-log-stream").count()).toBe(0);
      if (size.tag === "wide") {
        await page.getByRole("tablist").scrollIntoViewIfNeeded();
        await screenshot(page, "web-bots-page", "viewport");
      }

      // A search marks what it found, any case.
      const search = page.getByRole("form", { name: "Search the logs" });
      await search.getByLabel("Text").fill("WARNS");
      await search.getByRole("button", { name: "Search", exact: true }).click();
      const found = page.getByRole("log", { name: "Found lines" });
      await found.locator("mark").first().waitFor({ timeout: 30_000 });
      expect(await found.locator("mark").allTextContents()).toEqual(["warns"]);
      expect(await found.locator(".bot-log-text").allTextContents()).toEqual(["web bot warns"]);

      // The env editor: Set usable at once; Edit fills the form; while the change runs, Set says why it waits.
      const form = page.getByRole("form", { name: "Set a variable" });
      const set = form.getByRole("button", { name: "Set", exact: true });
      expect(await set.isEnabled()).toBe(true);
      expect((await styleOf(set, ["opacity"])).opacity).toBe("1");
      await page.getByRole("button", { name: "Edit FOO", exact: true }).click();
      expect(await form.getByLabel("Name").inputValue()).toBe("FOO");
      expect(await form.getByLabel("Value").inputValue()).toBe("one");
      await form.getByLabel("Value").fill(value);
      await set.click();
      await page.getByText("A change is under way").waitFor();
      const waiting = form.getByRole("button", { name: "Restarting safely…", exact: true });
      expect(await waiting.isDisabled()).toBe(true);

      // The new version says which variable changed, never its value.
      const versions = page.getByRole("table", { name: "Versions" });
      await versions.getByText("2 (current)").waitFor({ timeout: 120_000 });
      await page.getByTestId("bot-version-changes-2").getByText("env changed: FOO").waitFor();
      await versions
        .getByRole("row")
        .filter({ hasText: "2 (current)" })
        .getByText("live")
        .waitFor({ timeout: 30_000 });
      expect(await page.getByTestId("bot-version-changes-1").textContent()).toBe("first version");
      expect(await versions.textContent()).not.toContain(value);
      expect(await versions.textContent()).not.toContain("BAR");
      await set.waitFor();
      expect(await set.isEnabled()).toBe(true);
      expect(await overflowing(page)).toEqual([]);
      await versions.scrollIntoViewIfNeeded();
      await screenshot(page, `web-bots-versions${size.tag === "wide" ? "" : "-phone"}`, "viewport");
      await page.close();
      expect((await api(up.url, "DELETE", `/api/bots/${name}`)).status).toBe(200);
    },
    300_000,
  );
});

/** Starts a bot (`WebBotUp.startBot`), its containers removed with the file's. */
async function startBot(body: Record<string, unknown>): Promise<string> {
  const id = await bench!.startBot(body);
  botIds.push(id);
  return id;
}

/** The computed style of an element, these properties (camelCase) of it. */
function styleOf(locator: Locator, names: string[]): Promise<Record<string, string>> {
  return locator.evaluate((el, names) => {
    const { getComputedStyle } = globalThis as unknown as {
      getComputedStyle(element: unknown): Record<string, string>;
    };
    const style = getComputedStyle(el);
    return Object.fromEntries(names.map((name) => [name, style[name] ?? ""]));
  }, names);
}

/** What sticks out past the window's right edge, outside any box that scrolls itself (a phone must not scroll sideways). */
function overflowing(page: Page): Promise<string[]> {
  return page.evaluate(() => {
    type El = {
      getBoundingClientRect(): { right: number };
      parentElement: El | null;
      tagName: string;
      className: string;
    };
    const { document, getComputedStyle } = globalThis as unknown as {
      document: {
        documentElement: { clientWidth: number };
        body: El;
        querySelectorAll(s: string): ArrayLike<El>;
      };
      getComputedStyle(element: El): { overflowX: string };
    };
    const width = document.documentElement.clientWidth;
    return Array.from(document.querySelectorAll("main *"))
      .filter((el) => el.getBoundingClientRect().right > width + 1)
      .filter((el) => {
        for (let up = el.parentElement; up && up !== document.body; up = up.parentElement) {
          if (["auto", "scroll", "hidden"].includes(getComputedStyle(up).overflowX)) return false;
        }
        return true;
      })
      .map(
        (el) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().right)}`,
      )
      .slice(0, 12);
  });
}
