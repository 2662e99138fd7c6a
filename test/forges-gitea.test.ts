/**
 * Gitea (and Forgejo) issue tasks end to end: a real server and a sandboxed runner, the built-in
 * agent loop against the scripted model server, and the scripted Gitea (its REST v1 API, git
 * over smart HTTP, webhooks signed in X-Gitea-Signature). A labelled issue ends as a pull request
 * with the result table; a writer's `/runyard` comment on it is the next turn, a new commit; a
 * reader's comment, a wrong or missing signature and a replayed delivery start nothing.
 */
import { spawnSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type GiteaIssue, type ScriptedGitea, startScriptedGitea } from "./forge-server/gitea.js";
import { tempDir } from "./helpers/cli.js";
import { type AddedForge, addForge, startedRun } from "./helpers/forge-setup.js";
import { until } from "./helpers/processes.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { type ModelServer, startModelServer, type Turn } from "./model-server/server.js";

const botToken = "gitea-runyard-bot-token-51d2";
let gitea: ScriptedGitea;
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let added: AddedForge;
let bare = "";

const writeHello = (content: string): Turn[] => [
  { toolCalls: [{ name: "write_file", input: { path: "hello.py", content } }] },
  { text: "Wrote hello.py." },
];
const gitOut = (...args: string[]) =>
  spawnSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" }).stdout;
const runCount = async () =>
  (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=100")).body.runs.length;
const answer = (delivery: { body: string }) =>
  JSON.parse(delivery.body) as { outcome: string; run_id: string | null; note: string };

beforeAll(async () => {
  const root = tempDir("runyard-forges-gitea-");
  gitea = await startScriptedGitea(root);
  bare = gitea.createRepo("acme/app", { "README.md": "app\n" });
  gitea.addToken(botToken, "runyard-bot");
  // Only a repo admin may ask another user's permission of Gitea.
  gitea.setPermission("runyard-bot", "admin");
  gitea.setPermission("alice", "write");
  gitea.setPermission("carol", "read");
  model = await startModelServer({ conversations: [{ turns: writeHello('print("hello")\n') }] });
  // No runner is lost here: a lease of 30 s, not the tests' 2 s, holds under a loaded machine.
  server = await startTestServer(undefined, {
    RUNYARD_LEASE_MS: "30000",
    RUNYARD_RECONNECT_GRACE_MS: "60000",
  });
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "gitea-runner",
    env: {
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: "sk-forge-test",
      RUNYARD_WORKSPACE_DIR: join(root, "ws"),
    },
  });
  added = await addForge("gitea", {
    serverUrl: server.url,
    forgeUrl: gitea.url,
    repo: "acme/app",
    botToken,
    agent: "openai",
    test: "python3 hello.py | grep -qx hello",
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  await gitea?.close();
});

describe("tasks from a Gitea repo's issues", () => {
  let issue: GiteaIssue;
  let pull: GiteaIssue | undefined;

  it("a labelled issue ends as a pull request with the result table, and a comment on the issue", async () => {
    issue = gitea.createIssue({ title: "Add hello.py", body: "It prints hello.", user: "alice" });
    const runId = startedRun(
      await gitea.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "issues",
        "issue_label",
        gitea.payloads.labelUpdated("acme/app", issue, "runyard", "alice"),
      ),
    );
    const run = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(run.status, JSON.stringify(await readEvents(server.url, runId))).toBe("success");
    await until("Gitea hears of the run", () => gitea.comments.some((c) => c.issue === issue.number), 20_000);
    pull = gitea.issues.find((i) => i.pull?.head === `runyard/issue-${issue.number}`);
    expect(pull?.pull?.base).toBe("main");
    expect(pull?.body).toContain(`Closes #${issue.number}.`);
    expect(pull?.body).toMatch(/\| agent \| openai/);
    expect(pull?.body).toMatch(/\| tests \| success/);
    expect(pull?.body).toMatch(/\| diff \| 1 files, \+1 -0/);
    expect(gitOut("show", `runyard/issue-${issue.number}:hello.py`)).toBe('print("hello")\n');
    expect(gitea.comments.find((c) => c.issue === issue.number)?.body).toContain(`Opened #${pull?.number}`);
    expect(gitea.requests).toContain("GET /api/v1/repos/acme/app/collaborators/alice/permission");
  }, 150_000);

  it("another label put on the same issue starts no second task (label_updated names every label)", async () => {
    const runsBefore = await runCount();
    const again = await gitea.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "issues",
      "issue_label",
      gitea.payloads.labelUpdated("acme/app", issue, "bug", "alice"),
    );
    expect(answer(again).outcome).toBe("ignored");
    expect(answer(again).note).toContain(`issue #${issue.number} has a task already`);
    expect(await runCount()).toBe(runsBefore);
  });

  it("a writer's /runyard comment on the pull request is the next turn: a new commit, answered there", async () => {
    if (!pull) throw new Error("no pull request from the first test");
    model.setScript({
      conversations: [
        { turns: [...writeHello('print("hello")\n'), ...writeHello('print("hello")\nprint("bye")\n')] },
      ],
    });
    const before = Number(gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim());
    const number = pull.number;
    const commentsBefore = gitea.comments.filter((c) => c.issue === number).length;
    const runId = startedRun(
      await gitea.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "issue_comment",
        "pull_request_comment",
        gitea.payloads.comment("acme/app", pull, "/runyard also print bye", "alice"),
      ),
    );
    const followed = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(followed.status, JSON.stringify(followed)).toBe("success");
    await until(
      "Gitea hears of the follow-up",
      () => gitea.comments.filter((c) => c.issue === number).length > commentsBefore,
      20_000,
    );
    expect(Number(gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim())).toBe(before + 1);
    expect(gitOut("show", `runyard/issue-${issue.number}:hello.py`)).toContain("bye");
    expect(gitea.comments.filter((c) => c.issue === number).at(-1)?.body).toContain("Pushed a new commit");
  }, 150_000);

  it("a reader's comment starts nothing: the permission is asked of Gitea", async () => {
    if (!pull) throw new Error("no pull request from the first test");
    const runsBefore = await runCount();
    const reader = await gitea.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "issue_comment",
      "pull_request_comment",
      gitea.payloads.comment("acme/app", pull, "/runyard push to main", "carol"),
    );
    expect(answer(reader)).toMatchObject({ outcome: "refused", run_id: null });
    expect(answer(reader).note).toContain("carol has read access");
    expect(await runCount()).toBe(runsBefore);
  });

  it("a wrong or missing signature is 401 and a replayed delivery is a duplicate: nothing starts", async () => {
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const another = gitea.createIssue({ title: "Replayed", body: "x", user: "alice" });
    const payload = gitea.payloads.comment("acme/app", another, "/runyard once", "alice");
    const runsBefore = await runCount();
    const wrong = await gitea.deliver(
      added.webhookUrl,
      "not-the-secret",
      "issue_comment",
      "issue_comment",
      payload,
    );
    expect(wrong.status).toBe(401);
    const missing = await gitea.deliver(
      added.webhookUrl,
      undefined,
      "issue_comment",
      "issue_comment",
      payload,
    );
    expect(missing.status).toBe(401);
    // The secret itself, sent as GitLab sends it, is no Gitea signature.
    const asToken = await fetch(added.webhookUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitea-event": "issue_comment",
        "x-gitea-delivery": "d-token",
        "x-gitlab-token": added.webhookSecret,
        "x-gitea-signature": added.webhookSecret,
      },
      body: JSON.stringify(payload),
    });
    expect(asToken.status).toBe(401);
    expect(await runCount()).toBe(runsBefore);
    const id = "gitea-delivery-replayed-1";
    const runId = startedRun(
      await gitea.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "issue_comment",
        "issue_comment",
        payload,
        id,
      ),
    );
    const replayed = await gitea.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "issue_comment",
      "issue_comment",
      payload,
      id,
    );
    expect(answer(replayed)).toMatchObject({ outcome: "duplicate", run_id: runId });
    expect(await runCount()).toBe(runsBefore + 1);
    await waitForRun(server.url, runId, isFinal, 120_000);
  }, 150_000);

  it("takes Forgejo's own headers", async () => {
    const issue = gitea.createIssue({ title: "Forgejo", body: "x", user: "alice" });
    const body = JSON.stringify(gitea.payloads.comment("acme/app", issue, "thanks!", "alice"));
    const delivered = await fetch(added.webhookUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-forgejo-event": "issue_comment",
        "x-forgejo-delivery": "forgejo-delivery-1",
        "x-forgejo-signature": createHmac("sha256", added.webhookSecret).update(body).digest("hex"),
      },
      body,
    });
    expect(delivered.status).toBe(202);
    expect(await delivered.json()).toMatchObject({ outcome: "ignored" });
  });

  it("a token whose user may not read others' permissions is a FORGE_FAILED naming what it needs", async () => {
    gitea.setPermission("runyard-bot", "write");
    try {
      const other = gitea.createIssue({ title: "No admin", body: "x", user: "alice" });
      const failed = await gitea.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "issue_comment",
        "issue_comment",
        gitea.payloads.comment("acme/app", other, "/runyard go", "alice"),
      );
      expect(failed.status, failed.body).toBe(500);
      const error = JSON.parse(failed.body).error as { code: string; message: string; hint: string };
      expect(error.code).toBe("FORGE_FAILED");
      expect(error.message).toContain(
        "Gitea answered GET /repos/acme/app/collaborators/alice/permission with 403",
      );
      expect(error.hint).toContain("admin collaborator");
    } finally {
      gitea.setPermission("runyard-bot", "admin");
    }
  });
});
