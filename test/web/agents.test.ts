import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser, logIn, requireBrowser, screenshot, startUp, type Up } from "../helpers/browser.js";
import { tempDir } from "../helpers/cli.js";
import { git, seedBareRepo } from "../helpers/git-repos.js";
import { api } from "../helpers/server.js";
import { type ModelServer, startModelServer, type Turn, turns } from "../model-server/server.js";

/**
 * The agents pages in a real browser against a real `runyard up`: a task started from the form
 * runs the built-in `openai` agent on up's local runner against the scripted model server, and
 * its page shows the transcript (the model's tool call and message), tokens and the result; a
 * follow-up message opens the next turn's run.
 */

const haveBrowser = requireBrowser();
const apiKey = "sk-test-web-agents-5e1c";
let up: Up;
let browser: Browser;
let model: ModelServer;

const writeTurn: Turn = {
  toolCalls: [{ name: "write_file", input: { path: "hello.py", content: 'print("hello")\n' }, id: "call_1" }],
  usage: { input_tokens: 120, output_tokens: 30 },
};
/** Answered after a 429 with retry-after: the run is still going when the tool call shows. */
const doneTurn: Turn = {
  text: "Added hello.py.",
  usage: { input_tokens: 200, output_tokens: 8 },
  failFirst: [{ kind: "status", status: 429, retryAfterSecs: 3 }],
};
const followTurn: Turn = { text: "Nothing else to change.", usage: { input_tokens: 300, output_tokens: 5 } };

async function fill(page: Page, label: string | RegExp, value: string): Promise<void> {
  await page.getByLabel(label, { exact: true }).fill(value);
}

/** The task form with these agents, the prompt and the model server's URL and key as env. */
async function fillTask(page: Page, agents: string[], prompt: string): Promise<void> {
  await page.goto(`${up.url}#/agents`);
  const group = page.getByRole("group", { name: /^Agents/ });
  await group.getByRole("checkbox", { name: "openai" }).waitFor();
  for (const box of await group.getByRole("checkbox").all()) await box.uncheck();
  for (const agent of agents) await group.getByRole("checkbox", { name: agent }).check();
  await fill(page, "Prompt", prompt);
  await page.getByRole("button", { name: "Add variable" }).click();
  await fill(page, "Variable 1 name", "OPENAI_BASE_URL");
  await fill(page, "Variable 1 value", `${model.url}/v1`);
  await page.getByRole("button", { name: "Add variable" }).click();
  await fill(page, "Variable 2 name", "OPENAI_API_KEY");
  await fill(page, "Variable 2 value", apiKey);
}

describe.skipIf(!haveBrowser)("the agents pages", () => {
  beforeAll(async () => {
    model = await startModelServer(turns(writeTurn, doneTurn, followTurn));
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await up?.proc.kill();
    await model?.stop();
  });

  it("starts an openai task from the form and follows its transcript, tokens and result live", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    // The local runner advertises the built-in agent: the form offers it.
    await fillTask(page, ["openai"], "Create hello.py that prints hello.");
    await screenshot(page, "agents-start");
    await page.getByRole("button", { name: "Start", exact: true }).click();

    await page.waitForURL(/#\/agents\/run_/);
    const runId = decodeURIComponent(page.url().split("#/agents/")[1]!);
    const column = page.getByRole("region", { name: "Agent openai" });
    const transcript = column.getByRole("list", { name: "Transcript" });
    await transcript.getByText("write_file").waitFor({ timeout: 60_000 });
    // Live: the tool call is on the page while the model has not answered yet.
    await page.getByTestId("run-status").getByText("running").waitFor({ timeout: 2_000 });
    expect(await transcript.getByText("Added hello.py.").count()).toBe(0);
    await screenshot(page, "agents-run-live");
    await transcript.getByText("Added hello.py.").waitFor({ timeout: 60_000 });
    await page.getByTestId("run-status").getByText("success").waitFor({ timeout: 60_000 });
    // The script's tokens, summed from the run's agent.usage events.
    await page.getByTestId("run-tokens").getByText("tokens: 320 in, 38 out").waitFor();
    await column.getByRole("region", { name: "Result of openai" }).getByText("success").first().waitFor();
    await screenshot(page, "agents-run");

    // The page and the server agree on what the run holds.
    const run = await api<{ status: string }>(up.url, "GET", `/api/runs/${runId}`);
    expect(run.body.status).toBe("success");

    // The list shows the run, linked to its page.
    await page.goto(`${up.url}#/agents`);
    await page.getByRole("table", { name: "Agent runs" }).getByRole("link", { name: runId }).waitFor();
    await screenshot(page, "agents-list");

    // A follow-up is a new run: the page moves to it and follows it.
    await page.goto(`${up.url}#/agents/${runId}`);
    await fill(page, "Follow-up message", "Anything else?");
    await page.getByRole("button", { name: "Send" }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/agents/run_") && !url.hash.endsWith(runId));
    await page
      .getByRole("region", { name: "Agent openai" })
      .getByText("Nothing else to change.")
      .waitFor({ timeout: 60_000 });
    await page.close();
  }, 180_000);

  it("shows a fan-out's agents side by side, each with its result, and the diff of the one that worked", async () => {
    const bare = seedBareRepo(`${tempDir("runyard-web-git-")}/hello.git`);
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    // gemini's CLI is not installed here: it fails at once, openai does the task.
    await fillTask(page, ["openai", "gemini"], "Create hello.py that prints hello.");
    await fill(page, "Repository URL", bare);
    // Pushing is asked for, as with `runyard agent --push`: the box starts unchecked.
    const push = page.getByLabel("Push the branch");
    expect(await push.isChecked()).toBe(false);
    await push.check();
    await page.getByRole("button", { name: "Start", exact: true }).click();
    await page.waitForURL(/#\/agents\/run_/);
    const openai = page.getByRole("region", { name: "Agent openai" });
    const gemini = page.getByRole("region", { name: "Agent gemini" });
    const openaiResult = openai.getByRole("region", { name: "Result of openai" });
    await openaiResult.getByText("success").first().waitFor({ timeout: 60_000 });
    await gemini
      .getByRole("region", { name: "Result of gemini" })
      .getByText(/AGENT_NOT_INSTALLED/)
      .waitFor();
    // Side by side: both columns start at the same height.
    const [a, b] = await Promise.all([openai.boundingBox(), gemini.boundingBox()]);
    expect(a!.y).toBe(b!.y);
    expect(a!.x).toBeLessThan(b!.x);
    // The diff artifact, as the pushed branch holds it.
    const branch = (await openaiResult.getByText(/^branch /).textContent())!.replace("branch ", "");
    expect(git(bare, "show", `${branch}:hello.py`)).toBe('print("hello")\n');
    await openaiResult.locator("pre.diff").getByText('+print("hello")').waitFor();
    await openaiResult.getByText("1 files, +1 −0").waitFor();
    await screenshot(page, "agents-fan-out");
    await page.close();
  }, 120_000);

  it("shows the agents page on a phone without horizontal overflow of the page", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents`);
    await page.getByRole("form", { name: "Start an agent task" }).waitFor();
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, "agents-phone");
    await page.close();
  });
});
