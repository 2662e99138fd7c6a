import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { inject } from "vitest";
import { recordStart } from "../cost/record.js";
import { browserArgs, chromiumPath } from "./chromium.js";
import { repoRoot, tempDir } from "./cli.js";
import { adminToken, freePort, type Proc, startCli } from "./server.js";

export { chromiumPath };

/**
 * For tests that need the browser: false when there is none, so a test may skip locally; under
 * CI=true that throws instead, because CI must test the UI in a real browser.
 */
export function requireBrowser(): boolean {
  if (chromiumPath) return true;
  const message = "no chromium at /usr/bin/chromium";
  if (process.env.CI === "true")
    throw new Error(`${message}; CI must run the web UI tests (.ci/run installs it)`);
  process.stderr.write(`${message}; skipping the web UI tests\n`);
  return false;
}

/**
 * A browser for a file's tests: a connection to the run's one chromium when the global setup
 * (test/helpers/browser-server.ts) started it, else a chromium of the file's own. Either way
 * `close()` ends what the file made: a connection's pages and contexts go with it.
 */
export function launchBrowser(): Promise<Browser> {
  // A connection to the run's chromium costs a context per page, not a browser: counted as one.
  recordStart("browser");
  const endpoint = inject("browserWsEndpoint");
  if (endpoint) return chromium.connect(endpoint);
  return launchOwnBrowser();
}

/**
 * A chromium of the file's own, driven from the worker's process, where a download's file can be
 * read where the browser wrote it (`download.path()`). From the run's shared browser, in another
 * process, `saveAs` streams the file to the test over Playwright's protocol: for a 100 MB log that
 * cost its server and the worker 12 to 13 s of CPU, a launch of this one about 1 s.
 */
export function launchOwnBrowser(): Promise<Browser> {
  recordStart("browser");
  return chromium.launch({ executablePath: chromiumPath!, args: browserArgs });
}

/** Where screenshots go: kept by CI as artifacts of the run. */
export const screenshotDir = join(repoRoot, "test-artifacts", "screenshots");

/** The whole page, or (`viewport`) only what the window shows: what a reader sees without scrolling. */
export async function screenshot(
  page: Page,
  name: string,
  only: "page" | "viewport" = "page",
): Promise<string> {
  mkdirSync(screenshotDir, { recursive: true });
  const path = join(screenshotDir, `${name}.png`);
  await page.screenshot({ path, fullPage: only === "page" });
  return path;
}

/** Console errors and uncaught exceptions of a page, gathered from now on. */
export function consoleErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on("console", (message) => {
    if (message.type() === "error") errors.push(`${message.text()} (${message.location().url})`);
  });
  page.on("pageerror", (error) => errors.push(error.message));
  return errors;
}

export interface Up {
  url: string;
  proc: Proc;
  home: string;
}

/** A real `runyard up` (server and its local runner, SQLite) on a free port, with a known admin token. */
export async function startUp(env: Record<string, string> = {}): Promise<Up> {
  const home = tempDir("runyard-up-");
  const port = await freePort();
  const proc = startCli(["up", "--port", String(port), "--home", home], {
    RUNYARD_ADMIN_TOKEN: adminToken,
    RUNYARD_HEARTBEAT_MS: "300",
    ...env,
  });
  const line = await proc.waitFor(/listening on http:\/\/[^\s]+/, 30_000);
  return { url: line.replace("listening on ", ""), proc, home };
}

/**
 * Opens the UI and logs in with a pasted API token (the admin token by default). When it cannot,
 * it keeps a screenshot of the window and says what the page printed and which address it showed.
 */
export async function logIn(page: Page, url: string, token = adminToken): Promise<void> {
  const printed: string[] = [];
  const note = (line: string) => printed.length < 50 && printed.push(line);
  const onConsole = (message: { type(): string; text(): string }) =>
    note(`${message.type()}: ${message.text()}`);
  const onError = (error: Error) => note(`uncaught: ${error.message}`);
  const onFailed = (request: { url(): string; failure(): { errorText: string } | null }) =>
    note(`request failed: ${request.url()} ${request.failure()?.errorText ?? ""}`);
  page.on("console", onConsole);
  page.on("pageerror", onError);
  page.on("requestfailed", onFailed);
  try {
    await page.goto(url);
    await page.getByRole("tab", { name: "API token" }).click();
    await page.getByLabel(/Token/).fill(token);
    await page.getByRole("button", { name: "Log in" }).click();
    await page.getByRole("navigation", { name: "Sections" }).waitFor();
  } catch (error) {
    const shot = await screenshot(page, `login-failed-${Date.now()}`, "viewport").catch(
      (e: Error) => `none (${e.message})`,
    );
    const text = await page
      .locator("body")
      .textContent({ timeout: 2000 })
      .then((body) => (body ?? "").slice(0, 500))
      .catch((e: Error) => `(unreadable: ${e.message})`);
    throw new Error(
      `could not log in to ${url}: ${(error as Error).message}\n` +
        `page at ${page.url()}, showing: ${JSON.stringify(text)}\nscreenshot: ${shot}\n` +
        `the page printed:\n${printed.join("\n") || "(nothing)"}`,
    );
  } finally {
    page.off("console", onConsole);
    page.off("pageerror", onError);
    page.off("requestfailed", onFailed);
  }
}
