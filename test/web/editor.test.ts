import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { isFinal, waitForRun } from "../helpers/server.js";

/**
 * Seed 002's page in a real browser against a real `runyard up`: paste the hello workflow, see the
 * server's validator flag a misspelt key at its line, fix it, run it, land on the run's page.
 */

const seeds = "/work/shared/seeds";

/**
 * The hello workflow of seed 002's guide (section 4). Its host has the address of an agent-server
 * the seed starts by hand; here no agent-server runs, so the host loses its address and the step
 * runs on the runner of `runyard up`, as examples/simple.yaml does.
 */
function seedHello(): string {
  const fallback = `version: v0.1
name: demo
inventory:
  hosts:
    local:
      address: "http://127.0.0.1:7072"
steps:
  - name: hello
    targets: [local]
    action: cmd.run
    args:
      cmd: |
        echo "hello"
`;
  let text = fallback;
  try {
    const file = readdirSync(seeds).find((name) => name.startsWith("002_"));
    const block =
      file && /## 4\.[^\n]*\n+```yaml\n([\s\S]*?)```/.exec(readFileSync(join(seeds, file), "utf8"));
    if (block?.[1]) text = block[1];
  } catch {
    // The seeds are a copy outside the repository; CI may not have them.
  }
  return text.replace(/local:\n\s+address: "[^"]*"\n/, "local: {}\n");
}

const haveBrowser = requireBrowser();
let up: Up;
let browser: Browser;

/** Pastes into the editor as a browser does: a paste event carrying the text. */
async function paste(page: Page, text: string): Promise<void> {
  const content = page.locator(".cm-content");
  await content.click();
  await content.evaluate((element, pasted) => {
    // Runs in the page; the tests' TypeScript has no DOM library, so its constructors are named here.
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

/** The editor's text, as CodeMirror shows it. */
async function editorText(page: Page): Promise<string> {
  return (await page.locator(".cm-line").allTextContents()).join("\n");
}

describe.skipIf(!haveBrowser)("the Run a workflow page", () => {
  beforeAll(async () => {
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
  });

  it("validates as you type at the right line, and runs the workflow format guide's hello workflow", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.getByRole("link", { name: "Run", exact: true }).click();
    await page.locator(".cm-content").waitFor();

    // Replace the text with the seed's workflow, pasted.
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await expect.poll(() => editorText(page)).toBe("");
    await page.getByText(/the workflow file is empty/).waitFor();
    const hello = seedHello();
    await paste(page, hello);
    await expect.poll(() => editorText(page)).toBe(hello.trimEnd().concat("\n"));
    await page.getByText("✓ Valid: demo").waitFor();
    const run = page.getByRole("button", { name: "Run", exact: true });
    expect(await run.isEnabled()).toBe(true);
    await screenshot(page, "web-run-workflow");

    // Misspell `steps:` as `step:` by typing in it: the error shows at that line, inline and listed.
    const stepsLine = hello.split("\n").indexOf("steps:") + 1;
    expect(stepsLine).toBeGreaterThan(1);
    const line = page.locator(".cm-line").nth(stepsLine - 1);
    await line.click();
    await page.keyboard.press("End");
    await page.keyboard.press("ArrowLeft");
    await page.keyboard.press("Backspace");
    await expect.poll(() => line.textContent()).toBe("step:");
    const listed = page.getByRole("list", { name: "Problems" }).getByText(`line ${stepsLine}, col 1`);
    await listed.waitFor();
    expect(await page.getByRole("list", { name: "Problems" }).textContent()).toMatch(/unknown key "step"/);
    await line.locator(".cm-lintRange-error").waitFor();
    expect(await line.locator(".cm-lintRange-error").textContent()).toBe("step");
    expect(await run.isDisabled()).toBe(true);
    await screenshot(page, "web-run-workflow-invalid");

    // Fix it; the error goes, Run comes back; Ctrl-Enter runs.
    await page.keyboard.type("s");
    await expect.poll(() => line.textContent()).toBe("steps:");
    await page.getByText("✓ Valid: demo").waitFor();
    expect(await page.locator(".cm-lintRange-error").count()).toBe(0);
    await page.keyboard.press("Control+Enter");
    await page.waitForURL(/#\/runs\/run_[A-Za-z0-9_-]+$/);
    const runId = decodeURIComponent(new URL(page.url()).hash.split("/").pop()!);
    const finished = await waitForRun(up.url, runId, isFinal, 60_000);
    expect(finished.status, JSON.stringify(finished)).toBe("success");
    expect(finished.steps.map((step) => step.name)).toEqual(["hello"]);
    await page.close();
  }, 120_000);

  it("offers the workflow's vars defaults, runs with the values typed on Ctrl-Enter from a field, and runs on the Run button", async () => {
    let page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/run`);
    await page.locator(".cm-content").click();
    await page.keyboard.press("Control+A");
    await page.keyboard.press("Delete");
    await paste(
      page,
      'name: greet\nvars:\n  WHO: world\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo "hi $WHO"\n',
    );
    await page.getByText("✓ Valid: greet").waitFor();
    const name = page.getByLabel("Name of variable 1");
    await expect.poll(() => name.inputValue()).toBe("WHO");
    await page.getByLabel("Value of WHO").fill("browser");
    await screenshot(page, "web-run-workflow-phone");
    // Ctrl-Enter from a variable's field runs too.
    await page.getByLabel("Value of WHO").press("Control+Enter");
    await page.waitForURL(/#\/runs\/run_/);
    const runId = decodeURIComponent(new URL(page.url()).hash.split("/").pop()!);
    const finished = await waitForRun(up.url, runId, isFinal, 60_000);
    expect(finished.status).toBe("success");
    expect(finished.vars).toMatchObject({ WHO: "browser" });

    // A new visit starts from seed 002's hello workflow again; the Run button runs it.
    await page.close();
    page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}/#/run`);
    await page.getByText("✓ Valid: demo").waitFor();
    await page.getByRole("button", { name: "Run", exact: true }).click();
    await page.waitForURL((url) => /#\/runs\/run_/.test(url.hash) && !url.hash.endsWith(runId));
    const second = decodeURIComponent(new URL(page.url()).hash.split("/").pop()!);
    expect((await waitForRun(up.url, second, isFinal, 60_000)).status).toBe("success");
    await page.close();
  }, 120_000);
});
