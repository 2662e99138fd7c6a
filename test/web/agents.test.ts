import type { Browser, Page, Route } from "playwright-core";
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
/** Lets the model answer the turn after the tool call, once the test has seen the run live. */
let answerDone: () => void = () => undefined;
const doneAnswered = new Promise<void>((resolve) => {
  answerDone = resolve;
});
/**
 * Held until the test lets it go, then answered after a 429 with retry-after: the run is still going
 * when the tool call shows, however long the page takes to show it.
 */
const doneTurn: Turn = {
  text: "Added hello.py.",
  usage: { input_tokens: 200, output_tokens: 8 },
  failFirst: [{ kind: "status", status: 429, retryAfterSecs: 3 }],
  after: doneAnswered,
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

const desktop = { width: 1280, height: 800 };
const phone = { width: 390, height: 844 };

/** Long enough to fold: the turn's page shows its first words until it is opened. */
const followUpText = `Anything else?\n${Array.from({ length: 12 }, (_, i) => `Check ${i + 1} of the task.`).join("\n")}`;

/** The form marks the agents no runner offers (gemini's CLI is not installed here); openai is offered. */
async function expectAgentsMarked(page: Page): Promise<void> {
  const group = page.getByRole("group", { name: /^Agents/ });
  await group.getByRole("checkbox", { name: "gemini (not installed)", exact: true }).waitFor();
  await group.getByRole("checkbox", { name: "openai", exact: true }).waitFor();
}

/**
 * The two turns of one task read as one thread: the list shows the follow-up under its first
 * turn ("2 of 2", its own message), and each turn's page links the other; the follow-up's long
 * message is folded and opens in full.
 */
async function expectThread(page: Page, first: string, next: string, shot?: string): Promise<void> {
  await page.goto(`${up.url}#/agents`);
  const table = page.getByRole("table", { name: "Agent runs" });
  const firstRow = table.getByRole("row").filter({ has: page.getByRole("link", { name: first }) });
  const nextRow = table.getByRole("row").filter({ has: page.getByRole("link", { name: next }) });
  await firstRow.getByRole("cell", { name: "1 of 2", exact: true }).waitFor();
  await nextRow.getByRole("cell", { name: "2 of 2", exact: true }).waitFor();
  await nextRow.getByText("↳ Anything else? Check 1 of the task.", { exact: false }).waitFor();
  const rows = await table.getByRole("row").allTextContents();
  const at = rows.findIndex((row) => row.includes(first));
  expect(rows[at + 1]).toContain(next);
  const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
  expect(overflow).toBeLessThanOrEqual(0);
  if (shot) {
    await table.evaluate((element) => element.scrollIntoView({ block: "start" }));
    await screenshot(page, shot, "viewport");
  }

  await nextRow.getByRole("link", { name: next }).click();
  const turns = page.getByRole("navigation", { name: "Turns" });
  await turns.getByRole("link", { name: "← Turn 1" }).waitFor();
  const message = page.getByRole("region", { name: "Message" });
  await message.getByText("Message (13 lines)").waitFor();
  expect(await message.getByText("Check 12 of the task.").isVisible()).toBe(false);
  await message.getByText("Message (13 lines)").click();
  await message.getByText("Check 12 of the task.", { exact: false }).waitFor();
  await turns.getByRole("link", { name: "← Turn 1" }).click();
  await page.waitForURL((url) => url.hash === `#/agents/${first}`);
  await page
    .getByRole("navigation", { name: "Turns" })
    .getByRole("link", { name: /^Turn 2/ })
    .waitFor();
}

describe.skipIf(!haveBrowser)("the agents pages", () => {
  beforeAll(async () => {
    model = await startModelServer(turns(writeTurn, doneTurn, followTurn));
    [up, browser] = await Promise.all([startUp(), launchBrowser()]);
  }, 60_000);

  afterAll(async () => {
    answerDone();
    await browser?.close();
    await up?.proc.kill();
    await model?.stop();
  });

  it("starts an openai task from the form and follows its transcript, tokens and result live", async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await logIn(page, up.url);
    // The local runner advertises the built-in agent: the form offers it.
    await fillTask(page, ["openai"], "Create hello.py that prints hello.");
    await expectAgentsMarked(page);
    await screenshot(page, "agents-start");
    await page.getByRole("button", { name: "Start", exact: true }).click();

    await page.waitForURL(/#\/agents\/run_/);
    const runId = decodeURIComponent(page.url().split("#/agents/")[1]!);
    const column = page.getByRole("region", { name: "Agent openai" });
    const transcript = column.getByRole("list", { name: "Transcript" });
    await transcript.getByText("write_file").waitFor({ timeout: 60_000 });
    // The tool call's arguments by name, the file's content as written: a real newline, no `\n`.
    const call = transcript.locator(".tool-call");
    await call.getByRole("term").getByText("content", { exact: true }).waitFor();
    expect(await call.getByRole("definition").last().textContent()).toBe('print("hello")\n');
    expect(await call.textContent()).not.toContain("\\n");
    // Live: the tool call is on the page while the model has not answered yet.
    await page.getByTestId("run-status").getByText("running").waitFor({ timeout: 30_000 });
    expect(await transcript.getByText("Added hello.py.").count()).toBe(0);
    await screenshot(page, "agents-run-live");
    answerDone();
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

    // A follow-up is a new run: the page moves to it and follows it.
    await page.goto(`${up.url}#/agents/${runId}`);
    await page
      .getByRole("region", { name: "Prompt" })
      .getByText("Create hello.py that prints hello.")
      .waitFor();
    await fill(page, "Follow-up message", followUpText);
    await page.getByRole("button", { name: "Send", exact: true }).click();
    await page.waitForURL((url) => url.hash.startsWith("#/agents/run_") && !url.hash.endsWith(runId));
    const nextId = decodeURIComponent(page.url().split("#/agents/")[1]!);
    await page
      .getByRole("region", { name: "Agent openai" })
      .getByText("Nothing else to change.")
      .waitFor({ timeout: 60_000 });
    await page.getByRole("heading", { level: 1, name: "Anything else? Check 1 of the task." }).waitFor();
    await page.close();

    for (const viewport of [desktop, phone]) {
      const view = await browser.newPage({ viewport });
      await logIn(view, up.url);
      await expectThread(view, runId, nextId, viewport === desktop ? "agents-list" : undefined);
      await view.close();
    }
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
    // One diff to read, "Changes"; the raw unified diff is behind a toggle, closed.
    await page.getByRole("heading", { name: "Changes", exact: true }).waitFor();
    expect(await openaiResult.locator("pre.diff").count()).toBe(0);
    await openaiResult.getByText("Raw diff (openai.diff)").click();
    await openaiResult.locator("pre.diff").getByText('+print("hello")').waitFor();
    await openaiResult.getByText("1 files, +1 −0").waitFor();
    await screenshot(page, "agents-fan-out");
    await page.close();
  }, 120_000);

  it("offers the agents only once it knows which are usable, so the list never moves under a click", async () => {
    const page = await browser.newPage({ viewport: desktop });
    await logIn(page, up.url);
    let hold: ((route: Route) => void) | undefined;
    const held = new Promise<Route>((resolve) => (hold = resolve));
    await page.route(
      (url) => url.pathname === "/health/agents",
      (route) => hold?.(route),
    );
    await page.goto(`${up.url}#/agents`);
    const route = await held;
    const form = page.getByRole("form", { name: "Start an agent task" });
    await form.getByText("Looking for the agents this server and its runners offer…").waitFor();
    expect(await form.getByRole("checkbox", { name: "openai" }).count()).toBe(0);
    await route.continue();
    await expectAgentsMarked(page);
    // Usable first: openai (offered by up's runner) stands before gemini (not installed).
    const names = await page
      .getByRole("group", { name: /^Agents/ })
      .getByRole("checkbox")
      .evaluateAll((boxes) => boxes.map((box) => box.parentElement?.textContent?.trim() ?? ""));
    expect(names.findIndex((n) => n.startsWith("openai"))).toBeLessThan(
      names.findIndex((n) => n.startsWith("gemini")),
    );
    await page.close();
  });

  it("shows the agents page on a phone without horizontal overflow of the page", async () => {
    const page = await browser.newPage({ viewport: { width: 390, height: 844 } });
    await logIn(page, up.url);
    await page.goto(`${up.url}#/agents`);
    await page.getByRole("form", { name: "Start an agent task" }).waitFor();
    await expectAgentsMarked(page);
    const overflow = await page.evaluate<number>("document.documentElement.scrollWidth - window.innerWidth");
    expect(overflow).toBeLessThanOrEqual(0);
    await screenshot(page, "agents-phone");
    await page.close();
  });
});
