// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { api, isFinal, stepDir, submit, waitForRun } from "../helpers/server.js";
import { terminalShows } from "../helpers/web-terminal.js";

/**
 * The run page's "Retry from here" and "Edit and retry" in a real browser against a real
 * `runyard up`.
 */

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

/** build exports ARTIFACT; test exports TEST_REPORT and fails until `fixed` exists; ship reads both. */
function releaseFlow(dir: string): string {
  return `name: release
steps:
  - name: build
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo build >> ran
        echo "ARTIFACT=app-7" >> "$RUNYARD_OUTPUT"
  - name: test
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo test >> ran
        echo "TEST_REPORT=report-1" >> "$RUNYARD_OUTPUT"
        test -f fixed
  - name: ship
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo "ship \${ARTIFACT} \${TEST_REPORT}" >> ran
`;
}

const ran = (dir: string) => readFileSync(join(dir, "ran"), "utf8").trim().split("\n");
const headerStatus = (page: Page) => page.locator(".run-header h1 span");

async function failedRun(dir: string): Promise<string> {
  const id = await submit(up.url, releaseFlow(dir));
  expect((await waitForRun(up.url, id, isFinal, 60_000)).status).toBe("failed");
  return id;
}

/** Replaces the editor's text as a paste would. */
async function replaceText(page: Page, text: string): Promise<void> {
  const content = page.locator(".cm-content");
  await content.click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await content.evaluate((element, pasted) => {
    const dom = globalThis as unknown as {
      DataTransfer: new () => { setData: (type: string, value: string) => void };
      ClipboardEvent: new (type: string, init: object) => Event;
    };
    const data = new dom.DataTransfer();
    data.setData("text/plain", pasted);
    element.dispatchEvent(
      new dom.ClipboardEvent("paste", { clipboardData: data, bubbles: true, cancelable: true }),
    );
  }, text);
}

/** build prints the target it built for; check fails unless the target is production. */
const targetFlow = `name: target-flow
vars: {TARGET: staging}
steps:
  - name: build
    action: shell.run
    args:
      script: echo "built for \${TARGET}"
  - name: check
    action: shell.run
    args:
      script: |
        echo "checking \${TARGET}"
        test "\${TARGET}" = production
`;

const sizes = [
  { name: "laptop", width: 1280, height: 800 },
  { name: "phone", width: 390, height: 844 },
];

describe.skipIf(!haveBrowser)("retrying a run from its page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  for (const size of sizes) {
    it(`retries from a step after showing what it keeps: the new run marks the kept step, linked both ways, at ${size.width}x${size.height}`, async () => {
      const dir = stepDir();
      const first = await failedRun(dir);
      writeFileSync(join(dir, "fixed"), "");
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/runs/${first}`);
      await headerStatus(page).getByText("failed").waitFor();
      const runsBefore = (await api<{ runs: unknown[] }>(up.url, "GET", "/api/runs")).body.runs.length;
      await page.getByRole("button", { name: "Retry from test on local" }).click();
      // It asks first, with the server's plan: build kept, test and ship run again; nothing runs yet.
      const dialog = page.getByRole("dialog", { name: "Retry from test" });
      await dialog.getByRole("list", { name: "Kept steps" }).waitFor();
      expect(await dialog.getByRole("list", { name: "Kept steps" }).locator("li").allTextContents()).toEqual([
        "build",
      ]);
      expect(
        await dialog.getByRole("list", { name: "Steps run again" }).locator("li").allTextContents(),
      ).toEqual(["test", "ship"]);
      expect((await api<{ runs: unknown[] }>(up.url, "GET", "/api/runs")).body.runs.length).toBe(runsBefore);
      await screenshot(page, `run-retry-plan-${size.name}`, "viewport");
      await dialog.getByRole("button", { name: "Retry", exact: true }).click();
      await page.waitForURL((url) => url.hash.startsWith("#/runs/") && !url.hash.includes(first));
      await headerStatus(page).getByText("success").waitFor({ timeout: 60_000 });
      expect(ran(dir)).toEqual(["build", "test", "test", "ship app-7 report-1"]);
      await page.getByRole("link", { name: first }).first().waitFor();
      // The kept step says so in the graph and the table, each linking the run it was kept from;
      // the steps that ran show their durations.
      const keptMark = page.locator('.step-box-kept[data-kept-step="build"]');
      await keptMark.waitFor();
      expect(await keptMark.getAttribute("href")).toBe(`#/runs/${first}`);
      expect(await page.locator('.step-box[data-step="build"]').getAttribute("class")).toContain("step-kept");
      expect(await page.locator('.step-box[data-step="test"] .step-box-duration').textContent()).toMatch(
        /^ · \d+ (ms|s)$/,
      );
      const keptRow = page.getByRole("table", { name: "Steps" }).locator('tr[data-step="build"]');
      expect(await keptRow.locator(".step-kept-from a").getAttribute("href")).toBe(`#/runs/${first}`);
      await page.locator(".step-graph").scrollIntoViewIfNeeded();
      await screenshot(page, `run-retry-${size.name}`, "viewport");
      const retry = decodeURIComponent(page.url().split("#/runs/")[1] ?? "");
      // The runs list says what started each: the retry names the run it retries.
      await page.goto(`${up.url}/#/runs?trigger=retry`);
      const retryRow = page.locator("tr", { has: page.locator(`a[href="#/runs/${retry}"]`) });
      await retryRow.locator('[data-trigger="retry"]').waitFor();
      expect(await retryRow.locator('[data-trigger="retry"]').textContent()).toMatch(
        /^retry of run_.* from test$/,
      );
      expect(await page.locator(`a[href="#/runs/${first}"]`, { hasText: "…" }).count()).toBeGreaterThan(0);
      // Filtered by trigger: the first run (started by a program's API call) is not a retry.
      expect(
        await page.locator(`.runs-table td a[href="#/runs/${first}"]`, { hasText: "release" }).count(),
      ).toBe(0);
      // The first run's page names its retry.
      await page.goto(`${up.url}/#/runs/${first}`);
      await page.getByRole("link", { name: retry }).waitFor();
      await page.close();
    }, 120_000);
  }

  it("edits and retries: the editor holds the run's workflow, an edit whose steps need an export nobody kept is refused at its line", async () => {
    const dir = stepDir();
    const first = await failedRun(dir);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/runs/${first}`);
    await page.getByRole("button", { name: "Edit and retry" }).click();
    await page.getByRole("heading", { name: "Edit and retry" }).waitFor();
    await page.getByText("✓ Valid: release").waitFor();
    expect((await page.locator(".cm-line").allTextContents()).join("\n")).toContain("test -f fixed");

    // test no longer exports TEST_REPORT, which ship reads: refused, and nothing runs.
    const runsBefore = (await api<{ runs: unknown[] }>(up.url, "GET", "/api/runs")).body.runs.length;
    await replaceText(
      page,
      releaseFlow(dir).replace('echo "TEST_REPORT=report-1" >> "$RUNYARD_OUTPUT"', "true"),
    );
    await page.getByText("✓ Valid: release").waitFor();
    await page.getByLabel("Retry from").selectOption("test");
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page
      .getByRole("list", { name: "Refused" })
      .getByText('line 18, col 5: step "ship" needs ${TEST_REPORT}')
      .waitFor();
    expect((await api<{ runs: unknown[] }>(up.url, "GET", "/api/runs")).body.runs.length).toBe(runsBefore);
    await screenshot(page, "run-retry-refused");

    // A fix that keeps the export runs from test on, build kept.
    await replaceText(page, releaseFlow(dir).replace("test -f fixed", "echo fixed by the edit"));
    await page.getByText("✓ Valid: release").waitFor();
    await page.getByRole("button", { name: "Retry", exact: true }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/runs/") && !url.hash.includes(first));
    await headerStatus(page).getByText("success").waitFor({ timeout: 60_000 });
    expect(ran(dir)).toEqual(["build", "test", "test", "ship app-7 report-1"]);
    await page.close();
  }, 120_000);

  for (const size of sizes) {
    it(`edits and retries with the run's variables as rows and the edit shown as a diff; the kept step's output is the first run's, greyed, at ${size.width}x${size.height}`, async () => {
      const first = await submit(up.url, targetFlow, { TARGET: "staging" });
      expect((await waitForRun(up.url, first, isFinal, 60_000)).status).toBe("failed");
      const page = await browser.newPage({ viewport: { width: size.width, height: size.height } });
      await logIn(page, up.url);
      await page.goto(`${up.url}/#/runs/${first}/retry?from=check`);
      await page.getByText("✓ Valid: target-flow").waitFor();
      // The run's variables as rows; they stay the run's, so they cannot be removed.
      const value = page.getByLabel("Value of TARGET", { exact: true });
      await value.waitFor();
      expect(await value.inputValue()).toBe("staging");
      expect(await page.getByRole("button", { name: "Remove TARGET", exact: true }).count()).toBe(0);
      const changes = page.getByRole("region", { name: "Changes to the workflow" });
      expect(await changes.textContent()).toContain("none yet");
      await replaceText(
        page,
        targetFlow.replace('echo "checking ${TARGET}"', 'echo "checking ${TARGET} again"'),
      );
      await page.getByText("✓ Valid: target-flow").waitFor();
      await changes.locator('[data-kind="added"]').waitFor();
      expect(await changes.locator('[data-kind="removed"]').allTextContents()).toEqual([
        '-         echo "checking ${TARGET}"',
      ]);
      expect(await changes.locator('[data-kind="added"]').allTextContents()).toEqual([
        '+         echo "checking ${TARGET} again"',
      ]);
      expect(await changes.locator("h2").textContent()).toContain("+1 −1 lines");
      await value.fill("production");
      await screenshot(page, `run-retry-edit-${size.name}`, "viewport");
      await page.getByRole("button", { name: "Retry", exact: true }).click();
      await page.waitForURL((url) => url.hash.startsWith("#/runs/") && !url.hash.includes(first));
      await headerStatus(page).getByText("success").waitFor({ timeout: 60_000 });
      const retry = decodeURIComponent(page.url().split("#/runs/")[1] ?? "");
      const shown = await api<{ vars: Record<string, string> }>(up.url, "GET", `/api/runs/${retry}`);
      expect(shown.body.vars.TARGET).toBe("production");
      await terminalShows(page, "checking production again");
      // build was kept: its box shows the first run's output, greyed, and says so.
      await page.locator('.step-graph-canvas [data-step="build"]').click();
      const note = page.locator(".borrowed-output-note");
      await note.waitFor();
      expect(await note.textContent()).toContain("Step build was kept from run");
      expect(await note.getByRole("link").getAttribute("href")).toBe(`#/runs/${encodeURIComponent(first)}`);
      expect(await page.locator(".kept-output").count()).toBe(1);
      await terminalShows(page, "built for staging");
      await screenshot(page, `run-retry-kept-output-${size.name}`, "viewport");
      await page.getByRole("button", { name: "Show this run's output", exact: true }).click();
      await note.waitFor({ state: "detached" });
      expect(await page.locator(".kept-output").count()).toBe(0);
      await page.close();
    }, 120_000);
  }
});
