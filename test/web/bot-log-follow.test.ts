import type { Browser, Locator } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { logIn, requireBrowser, type Up } from "../helpers/browser.js";
import { requireDocker } from "../helpers/docker.js";
import { api } from "../helpers/server.js";
import { startWebBotUp, type WebBotUp } from "../helpers/web-bot-up.js";

/**
 * A chatty bot's log pane in a real browser against a real `runyard up` whose local runner has
 * Docker: the bot has printed more than the 2,000 lines the page keeps and prints ten more a
 * second, some long enough to wrap. A reader scrolled up keeps reading the same lines while the
 * oldest are dropped from the top; back at the end, the pane follows again, and a tab switch
 * starts at the end.
 */

const haveBrowser = requireBrowser();
const haveDocker = await requireDocker();
const run = `web-bot-log-follow-${process.pid}-${Date.now().toString(36)}`;
let up: Up;
let browser: Browser;
let image: string;
let bench: WebBotUp | undefined;
const botIds: string[] = [];

describe.skipIf(!haveBrowser || !haveDocker)("a chatty bot's log pane", () => {
  beforeAll(async () => {
    // 2,100 lines at once, then ten a second; every fifth one wraps even on a wide screen.
    const script = [
      'trap "exit 0" TERM',
      `long=${"x".repeat(400)}`,
      "i=0",
      'while [ $i -lt 2100 ]; do i=$((i+1)); echo "early $i"; done',
      'while true; do i=$((i+1)); if [ $((i % 5)) = 0 ]; then echo "line $i $long"; else echo "line $i"; fi; sleep 0.1 & wait $!; done',
    ].join("; ");
    ({ up, browser, image } = bench = await startWebBotUp(run, script));
  }, 120_000);

  afterAll(() => bench?.close(botIds));

  // Guards: at the 2,000-line cap the page drops lines from the top as new ones come; the reader
  // scrolled up must keep the line they read in place (it slid up a line a line before), follow
  // again once back at the end, and a tab switch starts the pane at the end.
  it.each([
    { width: 1280, height: 800, tag: "wide" },
    { width: 390, height: 844, tag: "phone" },
  ])(
    "at $width x $height keeps a reader scrolled up on their line past the cap, and follows at the end",
    async (size) => {
      const name = `chatty-${size.tag}`;
      await startBot({ name, image });
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}#/bots/${name}`);
      const logs = page.getByRole("log", { name: "Logs" });
      const lastNumber = async () =>
        Number(
          /^line (\d+)/.exec((await logs.locator(".bot-log-text").last().textContent()) ?? "")?.[1] ?? 0,
        );
      await expect.poll(lastNumber, { timeout: 90_000 }).toBeGreaterThan(2110);
      await expect.poll(() => logs.locator(".bot-log-line").count()).toBe(2000);
      const gap = () => logs.evaluate((el) => el.scrollHeight - el.scrollTop - el.clientHeight);
      expect(await gap()).toBeLessThan(2);

      // Scrolled up to the middle, the pane's top through the middle of a line (the pane keeps its
      // place to the pixel, not finer: a line's edge a fraction of a pixel from the top could
      // change which line counts as the top): that line, and where it is.
      await logs.evaluate((el) => {
        el.scrollTo(0, el.scrollHeight / 2);
        const top = el.getBoundingClientRect().top;
        type Row = { getBoundingClientRect(): { top: number; bottom: number; height: number } };
        const rows = Array.from(el.children) as Row[];
        const box = rows.map((row) => row.getBoundingClientRect()).find((each) => each.bottom > top);
        if (box) el.scrollBy(0, box.top - top + box.height / 2);
      });
      const read = await topLine(logs);
      const seen = await lastNumber();
      await expect.poll(lastNumber, { timeout: 30_000 }).toBeGreaterThan(seen + 15);
      const after = await topLine(logs);
      expect(after.text).toBe(read.text);
      expect(Math.abs(after.offset - read.offset)).toBeLessThan(2);

      // Back at the end, it follows again.
      await logs.evaluate((el) => el.scrollTo(0, el.scrollHeight));
      const atEnd = await lastNumber();
      await expect.poll(lastNumber, { timeout: 30_000 }).toBeGreaterThan(atEnd + 5);
      expect(await gap()).toBeLessThan(2);

      // Scrolled up, then to the build output and back: the logs start at their end again.
      await logs.evaluate((el) => el.scrollTo(0, 0));
      const height = (pane: Locator) => pane.evaluate((el) => el.getBoundingClientRect().height);
      const full = await height(logs);
      await page.getByRole("tab", { name: "Build output" }).click();
      const buildPane = page.getByRole("log", { name: "Build output" });
      await buildPane.waitFor();
      // The pane is as tall with its few lines as with 2,000: lines arriving never move what is
      // below it (the chart's span buttons) under the reader's pointer.
      expect(await buildPane.locator(".bot-log-line").count()).toBeLessThan(5);
      expect(await height(buildPane)).toBe(full);
      await page.getByRole("tab", { name: "Logs" }).click();
      await expect.poll(() => logs.locator(".bot-log-line").count(), { timeout: 30_000 }).toBe(2000);
      const back = await lastNumber();
      await expect.poll(lastNumber, { timeout: 30_000 }).toBeGreaterThan(back + 5);
      expect(await gap()).toBeLessThan(2);
      await page.close();
      expect((await api(up.url, "DELETE", `/api/bots/${name}`)).status).toBe(200);
    },
    240_000,
  );
});

/** The first line the pane shows at its top: its text, and its top's distance from the pane's. */
function topLine(logs: Locator): Promise<{ text: string; offset: number }> {
  return logs.evaluate((pane) => {
    const top = pane.getBoundingClientRect().top;
    type Row = { textContent: string | null; getBoundingClientRect(): { top: number; bottom: number } };
    for (const line of Array.from(pane.querySelectorAll(".bot-log-line")) as Row[]) {
      const box = line.getBoundingClientRect();
      if (box.bottom > top + 1) return { text: line.textContent ?? "", offset: box.top - top };
    }
    return { text: "", offset: 0 };
  });
}

/** Starts a bot (`WebBotUp.startBot`), its containers removed with the file's. */
async function startBot(body: Record<string, unknown>): Promise<void> {
  botIds.push(await bench!.startBot(body));
}
