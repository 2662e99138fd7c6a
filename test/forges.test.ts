/**
 * Issue tasks end to end: a real server and runner, the built-in agent loop against the scripted
 * model server, and the scripted GitHub (its REST API, git over smart HTTP, signed webhooks). A
 * labelled issue ends as a pull request with the result table, a review comment as a new commit
 * on it; a forged signature, a replayed delivery and a comment from a reader start nothing; a
 * failed task comments its typed error and pushes nothing.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ForgeIssue, type ScriptedForge, startScriptedForge } from "./forge-server/server.js";
import { tempDir } from "./helpers/cli.js";
import { addGithubForge, startedRun } from "./helpers/forge-setup.js";
import {
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { type ModelServer, startModelServer, type Turn } from "./model-server/server.js";

const botToken = "ghp_runyard_bot_token_77aa";
let forge: ScriptedForge;
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let forgeId = "";
let webhookUrl = "";
let webhookSecret = "";
let bare = "";

const writeHello = (content: string): Turn[] => [
  { toolCalls: [{ name: "write_file", input: { path: "hello.py", content } }] },
  { text: "Wrote hello.py." },
];
const gitOut = (...args: string[]) =>
  spawnSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" }).stdout;

beforeAll(async () => {
  const root = tempDir("runyard-forges-");
  forge = await startScriptedForge(root);
  bare = forge.createRepo("acme/app", { "README.md": "app\n" });
  forge.addToken(botToken, "runyard-bot");
  forge.setPermission("runyard-bot", "write");
  forge.setPermission("alice", "write");
  forge.setPermission("carol", "read");
  model = await startModelServer({ conversations: [{ turns: writeHello('print("hello")\n') }] });
  server = await startTestServer();
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "forge-runner",
    env: {
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: "sk-forge-test",
      RUNYARD_WORKSPACE_DIR: join(root, "ws"),
    },
  });
  const added = await addGithubForge({
    serverUrl: server.url,
    forgeUrl: forge.url,
    repo: "acme/app",
    botToken,
    agent: "openai",
    test: "python3 hello.py | grep -qx hello",
  });
  forgeId = added.id;
  webhookUrl = added.webhookUrl;
  webhookSecret = added.webhookSecret;
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  await forge?.close();
});

async function runCount(): Promise<number> {
  return (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=100")).body.runs.length;
}

describe("tasks from a forge's issues", () => {
  let issue: ForgeIssue;
  let pull: ForgeIssue | undefined;

  it("a labelled issue ends as a pull request with the result table, and a comment on the issue", async () => {
    issue = forge.createIssue("acme/app", { title: "Add hello.py", body: "It prints hello.", user: "alice" });
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "issues",
        forge.payloads.labeled("acme/app", issue, "runyard", "alice"),
      ),
    );
    const run = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(run.status).toBe("success");
    await waitFor(() => forge.comments.some((c) => c.issue === issue.number));
    pull = forge.issues.find((i) => i.pull?.head === `runyard/issue-${issue.number}`);
    expect(pull?.pull?.base).toBe("main");
    expect(pull?.body).toContain(`Closes #${issue.number}.`);
    expect(pull?.body).toMatch(/\| agent \| openai/);
    expect(pull?.body).toMatch(/\| tests \| success/);
    expect(pull?.body).toMatch(/\| diff \| 1 files, \+1 -0/);
    expect(gitOut("show", `runyard/issue-${issue.number}:hello.py`)).toBe('print("hello")\n');
    const comment = forge.comments.find((c) => c.issue === issue.number);
    expect(comment?.body).toContain(`Opened #${pull?.number}`);
  }, 150_000);

  it("a review comment on the pull request is a new commit on its branch, answered with a comment", async () => {
    if (!pull) throw new Error("no pull request from the first test");
    // The session resumes with the first turn's two answers: the script's turns 3 and 4 follow them.
    model.setScript({
      conversations: [
        { turns: [...writeHello('print("hello")\n'), ...writeHello('print("hello")\nprint("bye")\n')] },
      ],
    });
    const before = gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim();
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "pull_request_review_comment",
        forge.payloads.reviewComment("acme/app", pull, "also print bye", "alice"),
      ),
    );
    const followed = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(followed.status, JSON.stringify(followed)).toBe("success");
    const number = pull.number;
    await waitFor(() => forge.comments.some((c) => c.issue === number));
    expect(Number(gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim())).toBe(
      Number(before) + 1,
    );
    expect(gitOut("show", `runyard/issue-${issue.number}:hello.py`)).toContain("bye");
    expect(forge.comments.find((c) => c.issue === number)?.body).toContain("Pushed a new commit");
  }, 150_000);

  it("a review comment past the follow-up cap reaches the agent cut to it, saying so", async () => {
    if (!pull) throw new Error("no pull request from the first test");
    // The API refuses a follow-up past 256 KiB; a forge's comment of any length is cut to it.
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const from = model.requests.length;
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "pull_request_review_comment",
        forge.payloads.reviewComment("acme/app", pull, "r".repeat(600 * 1024), "alice"),
      ),
    );
    await waitForRun(server.url, runId, isFinal, 120_000);
    const asked = model.requests.slice(from).find((r) => r.rawBody.includes("rrrr"));
    expect(asked).toBeDefined();
    const shown = asked?.rawBody.match(/r{1000,}/)?.[0] ?? "";
    expect(shown.length).toBeGreaterThan(200 * 1024);
    expect(shown.length).toBeLessThanOrEqual(256 * 1024);
    expect(asked?.rawBody).toContain("characters of the comment were left out");
  }, 150_000);

  it("a forged signature, a replayed delivery and a reader's comment start nothing", async () => {
    const another = forge.createIssue("acme/app", { title: "Another", body: "x", user: "alice" });
    const payload = forge.payloads.labeled("acme/app", another, "runyard", "alice");
    const runsBefore = (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=100")).body.runs
      .length;
    const forged = await forge.deliver(webhookUrl, "not-the-secret-0000", "issues", payload);
    expect(forged.status).toBe(401);
    const unsigned = await forge.deliver(webhookUrl, undefined, "issues", payload);
    expect(unsigned.status).toBe(401);
    // Another forge's id (none here) is refused in the same words.
    const unknown = await forge.deliver(
      webhookUrl.replace(forgeId, "frg_nope"),
      webhookSecret,
      "issues",
      payload,
    );
    expect(unknown.status).toBe(401);
    expect(JSON.parse(unknown.body).error.message).toBe(JSON.parse(forged.body).error.message);
    const reader = await forge.deliver(
      webhookUrl,
      webhookSecret,
      "issue_comment",
      forge.payloads.comment("acme/app", another, "/runyard --push do it", "carol"),
    );
    expect(JSON.parse(reader.body)).toMatchObject({ outcome: "refused", run_id: null });
    const replayId = "delivery-replayed-1";
    const first = await forge.deliver(
      webhookUrl,
      webhookSecret,
      "issues",
      forge.payloads.labeled("acme/app", another, "other-label", "alice"),
      replayId,
    );
    expect(JSON.parse(first.body).outcome).toBe("ignored");
    const again = await forge.deliver(webhookUrl, webhookSecret, "issues", payload, replayId);
    expect(JSON.parse(again.body)).toMatchObject({ outcome: "duplicate", run_id: null });
    const runsAfter = (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=100")).body.runs
      .length;
    expect(runsAfter).toBe(runsBefore);
  });

  it("a signed delivery sent again under a new delivery id, or as another event, starts nothing", async () => {
    // Only the body is signed: whoever saw one delivery (a proxy's log, the repo's delivery
    // history) could send it again with ids and events of their own.
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const issue = forge.createIssue("acme/app", { title: "Once", body: "x", user: "alice" });
    const payload = forge.payloads.comment("acme/app", issue, "/runyard once", "alice");
    const runId = startedRun(await forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload));
    const again = await forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload);
    expect(JSON.parse(again.body)).toMatchObject({ outcome: "duplicate", run_id: runId });
    const otherEvent = await forge.deliver(webhookUrl, webhookSecret, "pull_request_review_comment", payload);
    expect(JSON.parse(otherEvent.body)).toMatchObject({ outcome: "duplicate" });
    await waitForRun(server.url, runId, isFinal, 120_000);
  }, 150_000);

  it("a delivery the forge's API failed starts nothing and answers 5xx; its redelivery starts the task", async () => {
    // GitHub's API can answer 500 (or time out): the delivery reached no decision, so GitHub must
    // show it failed, and its redelivery (same id, same body) must be acted on, not a duplicate.
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const flaky = forge.createIssue("acme/app", { title: "Flaky API", body: "x", user: "alice" });
    const payload = forge.payloads.comment("acme/app", flaky, "/runyard try", "alice");
    const id = "delivery-api-failed-1";
    const runsBefore = await runCount();
    forge.failPermission(500);
    const failed = await forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload, id);
    expect(failed.status, failed.body).toBe(500);
    const error = JSON.parse(failed.body).error as { code: string; message: string; hint: string };
    expect(error.code).toBe("FORGE_FAILED");
    expect(error.message).toContain(`delivery ${id} started nothing`);
    expect(error.message).toContain("with 500");
    expect(error.hint).toContain("Redeliver");
    expect(await runCount()).toBe(runsBefore);
    const runId = startedRun(await forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload, id));
    // Acted on once: the next redelivery is a duplicate again.
    const again = await forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload, id);
    expect(JSON.parse(again.body)).toMatchObject({ outcome: "duplicate", run_id: runId });
    expect(await runCount()).toBe(runsBefore + 1);
    await waitForRun(server.url, runId, isFinal, 120_000);
  }, 150_000);

  it("one delivery sent twice at once starts one task", async () => {
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const twice = forge.createIssue("acme/app", { title: "Twice", body: "x", user: "alice" });
    const payload = forge.payloads.comment("acme/app", twice, "/runyard once", "alice");
    const runsBefore = await runCount();
    const answers = await Promise.all(
      [1, 2].map(() =>
        forge.deliver(webhookUrl, webhookSecret, "issue_comment", payload, "delivery-twice-1"),
      ),
    );
    const outcomes = answers.map((answer) => JSON.parse(answer.body) as { outcome: string; run_id: string });
    expect(outcomes.map((o) => o.outcome).sort(), JSON.stringify(outcomes)).toEqual(["duplicate", "started"]);
    expect(await runCount()).toBe(runsBefore + 1);
    const started = outcomes.find((o) => o.outcome === "started");
    await waitForRun(server.url, started?.run_id ?? "", isFinal, 120_000);
  }, 150_000);

  it("an issue body past a task's cap reaches the agent cut to it, saying so", async () => {
    // A self-hosted forge takes bodies of any length; a task's description has the API's cap.
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const long = forge.createIssue("acme/app", {
      title: "Long",
      body: "b".repeat(600 * 1024),
      user: "alice",
    });
    const from = model.requests.length;
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "issue_comment",
        forge.payloads.comment("acme/app", long, "/runyard read it", "alice"),
      ),
    );
    await waitForRun(server.url, runId, isFinal, 120_000);
    const asked = model.requests.slice(from).find((r) => r.rawBody.includes("bbbb"));
    expect(asked).toBeDefined();
    const shown = asked?.rawBody.match(/b{1000,}/)?.[0] ?? "";
    expect(shown.length).toBeLessThanOrEqual(256 * 1024);
    expect(asked?.rawBody).toContain("characters of the issue were left out");
  }, 150_000);

  it("an issue title past a task's cap still starts the task, its description within the cap", async () => {
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const titled = forge.createIssue("acme/app", {
      title: "t".repeat(300 * 1024),
      body: "short",
      user: "alice",
    });
    const from = model.requests.length;
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "issue_comment",
        forge.payloads.comment("acme/app", titled, "/runyard read it", "alice"),
      ),
    );
    await waitForRun(server.url, runId, isFinal, 120_000);
    const asked = model.requests.slice(from).find((r) => r.rawBody.includes("Asked in a comment"));
    expect(asked?.rawBody).toContain("short");
    expect(asked?.rawBody.match(/t{1000,}/)?.[0].length ?? 0).toBeLessThanOrEqual(256 * 1024);
  }, 150_000);

  it("a failed task comments its typed error and pushes nothing", async () => {
    model.setScript({ conversations: [{ turns: [{ text: "I will not write anything." }] }] });
    const failing = forge.createIssue("acme/app", { title: "Do nothing", body: "x", user: "alice" });
    const runId = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "issue_comment",
        forge.payloads.comment("acme/app", failing, "/runyard please", "alice"),
      ),
    );
    expect((await waitForRun(server.url, runId, isFinal, 120_000)).status).toBe("failed");
    await waitFor(() => forge.comments.some((c) => c.issue === failing.number));
    const comment = forge.comments.find((c) => c.issue === failing.number);
    expect(comment?.body).toMatch(/ended \*\*failed\*\*; nothing was pushed/);
    expect(comment?.body).toMatch(/`AGENT_[A-Z_]+`/);
    expect(gitOut("branch", "--list", `runyard/issue-${failing.number}`).trim()).toBe("");
  }, 150_000);
});

/** The forge hears of a run's end a moment after run.finished is stored. */
async function waitFor(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("the forge heard nothing");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
