import { spawnSync } from "node:child_process";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { tempDir } from "../helpers/cli.js";
import { seedBareRepo } from "../helpers/git-repos.js";
import { api, isFinal, waitForRun } from "../helpers/server.js";
import { hasTools } from "../helpers/shared-agent-runner.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

/**
 * Review in a real browser against a real `runyard up`: an agent run's page shows its diff (the
 * file list with +/- counts, numbered lines), and a comment on a line opens the next turn, whose
 * prompt names the file and line; at a desktop's size and a phone's.
 */

const haveBrowser = requireBrowser();
const apiKey = "sk-test-web-review-81d0";
let up: Up;
let browser: Browser;
let model: ModelServer;
let first: string;
/** The turn the line comment started. */
let second: string;
/** The turn the file comment on `second` started. */
let third: string;
/** A run of the same task submitted without push, and the bare remote. */
let unpushed: string;
let remote: string;

const hello = 'def greet():\n    print("hello")\n\ngreet()\n';
const hello2 = 'def greet(name):\n    print("hello", name)\n\ngreet("you")\n';

describe.skipIf(!haveBrowser)("reviewing an agent run's diff", () => {
  beforeAll(async () => {
    model = await startModelServer({
      conversations: [
        {
          match: hasTools,
          turns: [
            { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: hello }, id: "c1" }] },
            { text: "Added hello.py." },
            { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: hello2 }, id: "c2" }] },
            { text: "greet takes a name now." },
            { text: "The name is printed already." },
          ],
        },
        { turns: [{ text: "Add hello" }] },
      ],
    });
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
    // Up's local runner advertises the built-in agent once it has connected.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const health = await api<{ on_runners: string[] }>(up.url, "GET", "/health/agents");
      if (health.body.on_runners.includes("openai")) break;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const bare = seedBareRepo(`${tempDir("runyard-web-review-")}/hello.git`);
    const submitted = await api<{ run_id: string }>(up.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      prompt: "add hello.py",
      repo: { url: bare },
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    first = submitted.body.run_id;
    const done = await waitForRun(up.url, first, isFinal, 120_000);
    expect(done.status, JSON.stringify(done.error)).toBe("success");
    const unpushedRun = await api<{ run_id: string }>(up.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      prompt: "add hello.py",
      repo: { url: bare, push: false },
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
    });
    expect(unpushedRun.status, JSON.stringify(unpushedRun.body)).toBe(201);
    unpushed = unpushedRun.body.run_id;
    remote = bare;
    const kept = await waitForRun(up.url, unpushed, isFinal, 120_000);
    expect(kept.status, JSON.stringify(kept.error)).toBe("success");
  }, 240_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
    await model?.stop();
  });

  it("at 1280x800 shows the diff and sends a comment on a line as the next turn, with file:line in its prompt", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents/${first}`);
    const diff = page.getByRole("region", { name: "Diff of openai" });
    const files = diff.getByRole("list", { name: "Files" });
    await files.getByText("hello.py").waitFor({ timeout: 60_000 });
    expect(await files.locator("li").first().textContent()).toContain("+4 -0");
    const file = diff.getByRole("region", { name: "File hello.py" });
    await file.getByText('+    print("hello")').waitFor();
    // Highlighted as Python by the file's name: `def` is a keyword, "hello" a string.
    expect(await file.locator("code.language-python .hljs-keyword").first().textContent()).toBe("def");
    expect(await file.locator("code.language-python .hljs-string").first().textContent()).toBe('"hello"');
    // The task pushed: no button offers to push it again.
    expect(await page.getByRole("button", { name: "Push branch" }).count()).toBe(0);
    await file.scrollIntoViewIfNeeded();
    await screenshot(page, "review-diff", "viewport");
    await file.getByRole("button", { name: "Comment on line 1 of hello.py" }).click();
    await page.getByRole("textbox", { name: /Comment on hello.py:1/ }).fill("greet should take a name");
    await page.getByRole("button", { name: "Send comment" }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/agents/run_") && !url.hash.endsWith(first));
    const next = decodeURIComponent(page.url().split("#/agents/")[1] as string);
    second = next;
    await page
      .getByRole("region", { name: "Agent openai" })
      .getByText("greet takes a name now.")
      .waitFor({ timeout: 120_000 });
    const prompt = model.requests.filter(hasTools).at(-1)?.rawBody ?? "";
    expect(prompt).toContain("Review comment on hello.py:1");
    expect(prompt).toContain("greet should take a name");
    // The next turn's page shows the change the comment asked for.
    await page
      .getByRole("region", { name: "File hello.py" })
      .getByText("+def greet(name):")
      .waitFor({ timeout: 60_000 });
    expect((await api<{ status: string }>(up.url, "GET", `/api/runs/${next}`)).body.status).toBe("success");
    await page.close();
  }, 240_000);

  it("at 390x844 shows the diff in the page's width and takes a comment on a file", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents/${second}`);
    const file = page.getByRole("region", { name: "File hello.py" });
    await file.getByText('+greet("you")').waitFor({ timeout: 60_000 });
    // The page does not scroll sideways: long lines scroll inside the file's box.
    const width = await page.evaluate(
      () =>
        (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document
          .documentElement.scrollWidth,
    );
    expect(width).toBeLessThanOrEqual(390);
    await file.scrollIntoViewIfNeeded();
    await screenshot(page, "review-diff-phone", "viewport");
    await file.getByRole("button", { name: "Comment on file" }).click();
    await page.getByRole("textbox", { name: /Comment on hello.py \(sent/ }).fill("print the name");
    await page.getByRole("button", { name: "Send comment" }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/agents/run_") && !url.hash.endsWith(second));
    third = decodeURIComponent(page.url().split("#/agents/")[1] as string);
    await page
      .getByRole("region", { name: "Agent openai" })
      .getByText("The name is printed already.")
      .waitFor({ timeout: 120_000 });
    const prompt = model.requests.filter(hasTools).at(-1)?.rawBody ?? "";
    expect(prompt).toContain("Review comment on hello.py (on openai's change)");
    await page.close();
  }, 240_000);

  for (const [size, viewport] of [
    ["1280x800", { width: 1280, height: 800 }],
    ["390x844", { width: 390, height: 844 }],
  ] as const) {
    it(`at ${size} a turn's page shows the review comment it was given in full and links the turns before and after it`, async () => {
      const page = await browser.newPage({ viewport });
      await logIn(page, up.url);
      await page.goto(`${up.url}#/agents/${second}`);
      await page
        .getByRole("heading", {
          level: 1,
          name: "Review comment on hello.py:1 (on openai's change): greet should",
        })
        .waitFor({ timeout: 60_000 });
      const message = page.getByRole("region", { name: "Message" });
      await message.getByText("greet should take a name").waitFor();
      await message.getByText("Adjust the code for this comment.", { exact: false }).waitFor();
      const turns = page.getByRole("navigation", { name: "Turns" });
      expect(await turns.getByRole("link", { name: "← Turn 1" }).getAttribute("href")).toBe(
        `#/agents/${first}`,
      );
      expect(await turns.getByRole("link", { name: /^Turn 3/ }).getAttribute("href")).toBe(
        `#/agents/${third}`,
      );
      // The write_file call's content reads as the file: its lines, not one JSON string.
      const call = page.getByRole("list", { name: "Transcript" }).locator(".tool-call");
      await call.getByRole("term").getByText("content", { exact: true }).waitFor();
      expect(await call.getByRole("definition").last().textContent()).toBe(hello2);
      // One diff: "Changes"; the raw unified diff stays closed until asked for.
      await page.getByRole("region", { name: "File hello.py" }).waitFor({ timeout: 60_000 });
      await page.getByText("Raw diff (openai.diff)").waitFor();
      expect(await page.locator("pre.diff").count()).toBe(0);
      const width = await page.evaluate<number>("document.documentElement.scrollWidth");
      expect(width).toBeLessThanOrEqual(viewport.width);
      if (viewport.width === 1280) await screenshot(page, "agents-thread", "viewport");
      await page.close();
    }, 120_000);

    it(`at ${size} a sent comment stays on its line after a reload, linked to the turn it started`, async () => {
      const page = await browser.newPage({ viewport });
      await logIn(page, up.url);
      await page.goto(`${up.url}#/agents/${first}`);
      const file = page.getByRole("region", { name: "File hello.py" });
      // Under line 1, the line it was written on.
      const underLine = file.locator("tr:has(button[aria-label='Comment on line 1 of hello.py']) + tr");
      await underLine.getByText("greet should take a name").waitFor({ timeout: 60_000 });
      await page.reload();
      await underLine.getByText("greet should take a name").waitFor({ timeout: 60_000 });
      const link = underLine.getByRole("link", { name: `Started turn ${second}` });
      await link.scrollIntoViewIfNeeded();
      if (viewport.width === 1280) await screenshot(page, "review-comment-sent", "viewport");
      await link.click();
      await page.waitForURL((url) => url.hash === `#/agents/${second}`);
      // A comment on the whole file sits under the file's name.
      const onFile = page
        .getByRole("region", { name: "File hello.py" })
        .getByRole("list", { name: "Sent comments" })
        .first();
      await onFile.getByText("print the name").waitFor({ timeout: 60_000 });
      await onFile.getByRole("link", { name: `Started turn ${third}` }).waitFor();
      const width = await page.evaluate<number>("document.documentElement.scrollWidth");
      expect(width).toBeLessThanOrEqual(viewport.width);
      await page.close();
    }, 120_000);
  }

  it("at 390x844 a run without push offers to push and to open a pull request, without sideways scrolling", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents/${unpushed}`);
    await page.getByRole("button", { name: "Push branch" }).waitFor({ timeout: 60_000 });
    await page.getByRole("button", { name: "Open pull request" }).waitFor();
    const width = await page.evaluate(
      () =>
        (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document
          .documentElement.scrollWidth,
    );
    expect(width).toBeLessThanOrEqual(390);
    await page.getByRole("button", { name: "Push branch" }).scrollIntoViewIfNeeded();
    await screenshot(page, "review-publish-phone", "viewport");
    await page.close();
  }, 120_000);

  it("at 1280x800 'Open pull request' without a forge says how to add one, and 'Push branch' pushes the branch", async () => {
    const branch = `runyard/${unpushed}-openai`;
    const onRemote = () =>
      spawnSync("git", ["--git-dir", remote, "rev-parse", "--verify", "--quiet", branch], {
        encoding: "utf8",
      });
    expect(onRemote().status).not.toBe(0);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents/${unpushed}`);
    await page.getByRole("button", { name: "Open pull request" }).click({ timeout: 60_000 });
    await page.getByText(/no forge added here holds the repo/).waitFor({ timeout: 30_000 });
    await page
      .getByText(/runyard forge add/)
      .first()
      .waitFor();
    await page.getByRole("button", { name: "Push branch" }).scrollIntoViewIfNeeded();
    await screenshot(page, "review-publish-no-forge", "viewport");
    await page.getByRole("button", { name: "Push branch" }).click();
    await page.waitForURL((url) => url.hash === `#/agents/${unpushed}-push`, { timeout: 30_000 });
    await page.getByTestId("run-status").getByText("success").waitFor({ timeout: 120_000 });
    expect(onRemote().stdout.trim()).toMatch(/^[0-9a-f]{40}$/);
    expect(
      spawnSync("git", ["--git-dir", remote, "show", `${branch}:hello.py`], { encoding: "utf8" }).stdout,
    ).toBe(hello);
    // The push run's page offers no second push.
    await page.getByRole("region", { name: "File hello.py" }).waitFor({ timeout: 60_000 });
    expect(await page.getByRole("button", { name: "Push branch" }).count()).toBe(0);
    await screenshot(page, "review-publish-pushed", "viewport");
    await page.close();
  }, 240_000);
});
