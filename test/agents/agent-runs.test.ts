import {
  existsSync,
  lutimesSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { processesWith, tempDir } from "../helpers/cli.js";
import { git as gitIn, seedBareRepo } from "../helpers/git-repos.js";
import { toolProcessRuns } from "../helpers/run-event.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer, type Turn, turns } from "../model-server/server.js";
import { type GitHttpServer, startGitHttpServer } from "../workspace/git-http-server.js";

/**
 * Agent runs end to end: a real server and runner process, the built-in `openai` agent against
 * the scripted model server, and a repo served by real git over HTTP that wants a token.
 */

const gitToken = "ghp_test_token_7f3a9c1e5b";
const apiKey = "sk-test-key-4d2b8e6f0a";
/** The runner's own credentials, as seed 000 sets them on a runner. */
const runnerKey = "sk-ant-runner-own-31337";
const runnerGitToken = "ghp_runner_own_token_31337";

let server: TestServer;
let runner: Proc;
let git: GitHttpServer;
let projects: string;
let workspaces: string;

/** A bare repo `<name>.git` with one commit on main, served by the git HTTP server. */
function bareRepo(name: string): string {
  return seedBareRepo(join(projects, `${name}.git`));
}

const writeTurn: Turn = {
  toolCalls: [{ name: "write_file", input: { path: "hello.py", content: 'print("hello")\n' }, id: "call_1" }],
  usage: { input_tokens: 120, output_tokens: 30 },
};
const doneTurn: Turn = { text: "Added hello.py.", usage: { input_tokens: 200, output_tokens: 8 } };

async function submitAgent(body: Record<string, unknown>): Promise<string> {
  const answer = await api<{ run_id: string }>(server.url, "POST", "/api/runs", { kind: "agent", ...body });
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.run_id;
}

function finishedOf(events: RunEvent[]) {
  const last = events.at(-1);
  if (last?.type !== "run.finished")
    throw new Error(`the stream did not end with run.finished: ${last?.type}`);
  return last;
}

/** Every file under `dir`, read as bytes: where a secret must not be. */
function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...filesUnder(path));
    else if (stat.isFile()) out.push(path);
  }
  return out;
}

beforeAll(async () => {
  projects = tempDir("runyard-git-");
  mkdirSync(projects, { recursive: true });
  git = await startGitHttpServer({ projectRoot: projects, username: "x-access-token", password: gitToken });
  server = await startTestServer();
  workspaces = tempDir("runyard-workspaces-");
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "agent-runner",
    capacity: 4,
    env: { RUNYARD_WORKSPACE_DIR: workspaces, ANTHROPIC_API_KEY: runnerKey, GITHUB_TOKEN: runnerGitToken },
  });
  await api(server.url, "PUT", "/api/secrets/GITHUB_TOKEN", { value: gitToken });
}, 60_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await git?.close();
});

describe("an agent task on a repo", () => {
  let model: ModelServer;
  let runId: string;
  let events: RunEvent[];
  let bare: string;

  beforeAll(async () => {
    model = await startModelServer(turns(writeTurn, doneTurn));
    bare = bareRepo("hello");
    runId = await submitAgent({
      agent: "openai",
      title: "Add hello.py",
      description: "Create hello.py that prints hello.",
      repo: { url: git.url("hello.git"), push: true },
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
      secrets: ["GITHUB_TOKEN"],
      tests: { command: "python3 hello.py | grep -q hello" },
    });
    await waitForRun(server.url, runId, isFinal, 60_000);
    events = await readEvents(server.url, runId);
  }, 90_000);

  afterAll(async () => {
    await model.stop();
  });

  it("ends with the branch pushed, holding the change in a commit that names the task", () => {
    const finished = finishedOf(events);
    expect(finished.status, JSON.stringify(finished.error)).toBe("success");
    const [summary] = finished.agents ?? [];
    expect(summary).toMatchObject({
      agent: "openai",
      status: "success",
      pushed: true,
      tests: { status: "success" },
    });
    const branch = summary?.branch ?? "";
    expect(branch).toBe(`runyard/${runId}-openai`);
    expect(gitIn(bare, "show", `${branch}:hello.py`)).toBe('print("hello")\n');
    const message = gitIn(bare, "log", "-1", "--format=%B", branch);
    expect(message).toContain("Add hello.py");
    expect(message).toContain(runId);
    expect(gitIn(bare, "rev-parse", branch).trim()).toBe(summary?.commit);
  });

  it("reports each pipeline step on the agent's host, and the transcript as agent events", () => {
    const steps = events
      .filter((e) => e.type === "step.finished")
      .map((e) => e.type === "step.finished" && `${e.step}:${e.status}`);
    expect(steps).toEqual([
      "prepare:success",
      "agent:success",
      "test:success",
      "commit:success",
      "push:success",
    ]);
    const call = events.find((e) => e.type === "agent.tool_call");
    expect(call).toMatchObject({ agent: "openai", tool: "write_file", call_id: "call_1" });
    expect(events.find((e) => e.type === "agent.message")).toMatchObject({
      role: "assistant",
      text: "Added hello.py.",
    });
  });

  it("counts exactly the script's tokens", () => {
    const usage = events.filter((e) => e.type === "agent.usage");
    const sum = (key: "input_tokens" | "output_tokens") =>
      usage.reduce((total, e) => total + (e.type === "agent.usage" ? e[key] : 0), 0);
    expect(sum("input_tokens")).toBe(320);
    expect(sum("output_tokens")).toBe(38);
    expect(finishedOf(events).agents?.[0]).toMatchObject({ input_tokens: 320, output_tokens: 38 });
  });

  it("keeps a diff artifact equal to what the remote holds", async () => {
    const listed = await api<{ artifacts: Array<{ name: string }> }>(
      server.url,
      "GET",
      `/api/runs/${runId}/artifacts`,
    );
    expect(listed.body.artifacts.map((a) => a.name).sort()).toEqual([
      "openai-tests.log",
      "openai-transcript.jsonl",
      "openai.diff",
    ]);
    const response = await fetch(new URL(`/api/runs/${runId}/artifacts/openai.diff`, server.url), {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const diff = await response.text();
    const branch = finishedOf(events).agents?.[0]?.branch ?? "";
    expect(diff).toBe(gitIn(bare, "diff", "main", branch));
    expect(finishedOf(events).agents?.[0]?.diff_stats).toEqual({ files: 1, insertions: 1, deletions: 0 });
  });

  it("never lets the git token or the API key out: not in events, artifacts, the database nor the runner's files", async () => {
    const everything = [JSON.stringify(events)];
    for (const name of ["openai.diff", "openai-transcript.jsonl", "openai-tests.log"]) {
      const response = await fetch(new URL(`/api/runs/${runId}/artifacts/${name}`, server.url), {
        headers: { authorization: `Bearer ${adminToken}` },
      });
      everything.push(await response.text());
    }
    for (const file of filesUnder(server.home)) everything.push(readFileSync(file).toString("latin1"));
    const joined = everything.join("\n");
    expect(joined).not.toContain(gitToken);
    expect(joined).not.toContain(apiKey);
    // The token reached git (the server saw the right credentials), never in a URL.
    expect(git.requests.some((r) => r.authorized)).toBe(true);
    expect(git.requests.every((r) => !r.path.includes(gitToken))).toBe(true);
  });

  it("leaves no worktree behind, and keeps the mirror for the next run", () => {
    const root = join(workspaces, "agent-runner");
    expect(readdirSync(join(root, "worktrees"))).toEqual([]);
    const [mirror] = readdirSync(join(root, "mirrors")).filter((name) => name.endsWith(".git"));
    expect(mirror).toBeDefined();
    const list = gitIn(join(root, "mirrors", mirror ?? ""), "worktree", "list");
    expect(list.trim().split("\n")).toHaveLength(1);
  });
});

describe("an agent that fails, stalls or is canceled", () => {
  const models: ModelServer[] = [];
  afterAll(async () => {
    for (const model of models) await model.stop();
  });

  async function runWith(
    script: Turn[],
    extra: Record<string, unknown> = {},
  ): Promise<{ runId: string; model: ModelServer }> {
    const model = await startModelServer(turns(...script));
    models.push(model);
    const runId = await submitAgent({
      agent: "openai",
      prompt: "do the thing",
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
      ...extra,
    });
    return { runId, model };
  }

  it("maps a 401 to AGENT_AUTH, and masks the key the provider quoted back", async () => {
    const { runId } = await runWith([
      { fail: { kind: "status", status: 401, message: `bad key ${apiKey}` } },
    ]);
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_AUTH");
    expect(JSON.stringify(run)).not.toContain(apiKey);
    expect(JSON.stringify(await readEvents(server.url, runId))).not.toContain(apiKey);
  });

  it("keeps the runner's own credentials from an agent sent to the submitter's endpoint, and masks them", async () => {
    const { runId } = await runWith([
      { toolCalls: [{ name: "run_command", input: { command: "env" }, id: "call_env" }] },
      { text: "done" },
    ]);
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    const events = JSON.stringify(await readEvents(server.url, runId));
    expect(events).toContain("OPENAI_BASE_URL");
    expect(events).not.toContain("ANTHROPIC_API_KEY=");
    expect(events).not.toContain("GITHUB_TOKEN=");
    expect(events).not.toContain(runnerKey);
    expect(events).not.toContain(runnerGitToken);
  });

  it("stops a model that goes quiet mid-stream with AGENT_STALLED within stall_secs", async () => {
    const { runId, model } = await runWith(
      [{ text: "thinking", fail: { kind: "stall-mid-stream", afterEvents: 1 } }],
      {
        stall_secs: 2,
      },
    );
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.error?.code).toBe("AGENT_STALLED");
    // Counted from the request whose stream stalled, not from the submit (the queue, the
    // runner, the agent's start-up): the 2 s stall limit and stopping the agent.
    const stalled = model.requests.at(-1);
    expect(stalled, "the agent asked the model before it was stopped").toBeDefined();
    expect(Date.now() - stalled!.at).toBeLessThan(20_000);
  });

  it("cancel stops the agent's command and removes its worktree", async () => {
    const bare = bareRepo("cancel-me");
    const marker = `runyard-cancel-${Date.now()}`;
    const { runId } = await runWith(
      [
        {
          toolCalls: [{ name: "run_command", input: { command: `sleep 600; echo ${marker}` }, id: "call_s" }],
        },
      ],
      { repo: { url: git.url("cancel-me.git"), push: true }, secrets: ["GITHUB_TOKEN"] },
    );
    await toolProcessRuns(server.url, runId, marker, 30_000);
    const answer = await api<{ status: string }>(server.url, "POST", `/api/runs/${runId}/cancel`);
    expect(answer.status).toBe(200);
    const run = await waitForRun(server.url, runId, isFinal, 30_000);
    expect(run.status).toBe("canceled");
    expect(processesWith(marker)).toEqual([]);
    expect(readdirSync(join(workspaces, "agent-runner", "worktrees"))).toEqual([]);
    expect(gitIn(bare, "branch", "--list").trim()).toBe("* main");
  });
});

describe("an agent no runner has", () => {
  it("fails at once with AGENT_NOT_INSTALLED instead of waiting in the queue, and a fan-out says which", async () => {
    const model = await startModelServer(turns(doneTurn));
    try {
      const runId = await submitAgent({
        agents: ["openai", "gemini"],
        prompt: "hello",
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
      });
      const run = await waitForRun(server.url, runId, isFinal, 30_000);
      expect(run.status).toBe("failed");
      expect(run.error?.message).toContain("1 of 2 agents failed (gemini: AGENT_NOT_INSTALLED)");
      const finished = (await readEvents(server.url, runId)).at(-1);
      expect(finished?.type === "run.finished" && finished.agents?.map((a) => [a.agent, a.status])).toEqual([
        ["openai", "success"],
        ["gemini", "failed"],
      ]);
    } finally {
      await model.stop();
    }
  });

  it("a chat for it answers with the reason, not a run left queued", async () => {
    const answer = await api<{ status: string; error: { code: string; hint: string } }>(
      server.url,
      "POST",
      "/api/chat",
      {
        message: "hello",
        model: "gemini-2.5-pro",
        timeout_secs: 30,
      },
    );
    expect(answer.status).toBe(200);
    expect(answer.body.status).toBe("failed");
    expect(answer.body.error.code).toBe("AGENT_NOT_INSTALLED");
    expect(answer.body.error.hint).toContain("runyard agents install gemini");
  });
});

describe("follow-ups", () => {
  it("a message continues the same session in the same workspace, on the branch the last turn left", async () => {
    const bare = bareRepo("chat");
    const model = await startModelServer(
      turns(
        writeTurn,
        doneTurn,
        {
          toolCalls: [
            { name: "write_file", input: { path: "bye.py", content: 'print("bye")\n' }, id: "call_2" },
          ],
          usage: { input_tokens: 300, output_tokens: 20 },
        },
        { text: "Added bye.py too.", usage: { input_tokens: 350, output_tokens: 6 } },
      ),
    );
    try {
      const first = await submitAgent({
        agent: "openai",
        prompt: "add hello.py",
        repo: { url: git.url("chat.git"), push: true },
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
        secrets: ["GITHUB_TOKEN"],
      });
      const done = await waitForRun(server.url, first, isFinal, 60_000);
      expect(done.status).toBe("success");
      const next = await api<{ run_id: string; parent_run_id: string }>(
        server.url,
        "POST",
        `/api/runs/${first}/messages`,
        { text: "now add bye.py" },
      );
      expect(next.status).toBe(201);
      expect(next.body.parent_run_id).toBe(first);
      const second = await waitForRun(server.url, next.body.run_id, isFinal, 60_000);
      expect(second.status, JSON.stringify(second.error)).toBe("success");
      // The model saw the first turn's conversation before the new message.
      const last = model.requests.at(-1)?.rawBody ?? "";
      expect(last).toContain("add hello.py");
      expect(last).toContain("now add bye.py");
      const branch = `runyard/${first}-openai`;
      expect(gitIn(bare, "show", `${branch}:hello.py`)).toBe('print("hello")\n');
      expect(gitIn(bare, "show", `${branch}:bye.py`)).toBe('print("bye")\n');
      expect(gitIn(bare, "rev-list", "--count", `main..${branch}`).trim()).toBe("2");
    } finally {
      await model.stop();
    }
  });

  /**
   * A conversation's first turn, unpushed, on a runner of its own (`name`-runner, label `name`)
   * that is then stopped, its kept branch dated 8 days back, and started again over the same
   * home and workspaces: the start removes the branch. `body` runs with the first run's id.
   */
  async function afterExpiry(
    name: string,
    body: (ctx: { first: string; bare: string; model: ModelServer }) => Promise<void>,
  ): Promise<void> {
    const bare = bareRepo(name);
    const model = await startModelServer(turns(writeTurn, doneTurn));
    const home = tempDir(`runyard-${name}-home-`);
    const ownWorkspaces = tempDir(`runyard-${name}-workspaces-`);
    const token = await runnerToken(server.url);
    const start = () =>
      startRunner(server.url, token, {
        id: `${name}-runner`,
        labels: name,
        env: { RUNYARD_HOME: home, RUNYARD_WORKSPACE_DIR: ownWorkspaces },
      });
    let runner = await start();
    try {
      const first = await submitAgent({
        agent: "openai",
        prompt: "add hello.py",
        labels: [name],
        repo: { url: git.url(`${name}.git`), push: false },
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
        secrets: ["GITHUB_TOKEN"],
      });
      const done = await waitForRun(server.url, first, isFinal, 60_000);
      expect(done.status, JSON.stringify(done.error)).toBe("success");
      const kept = join(ownWorkspaces, `${name}-runner`, "kept", `${first}-openai.git`);
      expect(existsSync(kept)).toBe(true);
      await runner.kill();
      const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
      lutimesSync(kept, eightDaysAgo, eightDaysAgo);
      runner = await start();
      expect(existsSync(kept)).toBe(false);
      await body({ first, bare, model });
    } finally {
      await runner.kill();
      await model.stop();
    }
  }

  /** The follow-up of run `first`, once ended. */
  async function followUp(first: string) {
    const next = await api<{ run_id: string }>(server.url, "POST", `/api/runs/${first}/messages`, {
      text: "now add bye.py",
    });
    expect(next.status).toBe(201);
    return waitForRun(server.url, next.body.run_id, isFinal, 60_000);
  }

  it("a message after the runner dropped the unpushed branch (7 days unused, then a restart) fails with WORKSPACE_BRANCH_EXPIRED before the agent runs", async () => {
    await afterExpiry("expired", async ({ first, bare, model }) => {
      const asked = model.requests.length;
      const second = await followUp(first);
      expect(second.status).toBe("failed");
      expect(second.error?.code).toBe("WORKSPACE_BRANCH_EXPIRED");
      expect(second.error?.message).toContain(
        `the branch runyard/${first}-openai of this conversation expired: it was never pushed to ${git.url("expired.git")}, and this runner keeps a conversation's branch 7 days after its last turn`,
      );
      const finished = finishedOf(await readEvents(server.url, second.run_id));
      expect(JSON.stringify(finished)).toContain("diff.patch");
      // The agent never ran: its session would have gone on as if its work were there.
      expect(model.requests.length).toBe(asked);
      expect(gitIn(bare, "branch", "--list").trim()).toBe("* main");
    });
  });

  it("a message after the runner dropped the unpushed branch does not go on from a branch of that name someone else pushed to the remote", async () => {
    await afterExpiry("planted", async ({ first, bare, model }) => {
      // Someone else who may push to the repo (not send this member's follow-ups) makes the
      // conversation's branch there, with a test script of theirs the turn would run.
      const other = tempDir("runyard-planter-");
      gitIn(projects, "clone", "--quiet", bare, other);
      mkdirSync(join(other, "planted"), { recursive: true });
      writeFileSync(join(other, "planted", "run.sh"), "echo someone else's code\n");
      gitIn(other, "add", ".");
      gitIn(other, "-c", "user.name=o", "-c", "user.email=o@test", "commit", "--quiet", "-m", "planted");
      gitIn(other, "push", "--quiet", "origin", `HEAD:refs/heads/runyard/${first}-openai`);

      const asked = model.requests.length;
      const second = await followUp(first);
      expect(second.status).toBe("failed");
      expect(second.error?.code).toBe("WORKSPACE_BRANCH_EXPIRED");
      expect(model.requests.length).toBe(asked);
    });
  });

  it("a chat whose agent dated its folder in the future is removed once 7 days pass unused all the same", async () => {
    const touchTurn: Turn = {
      toolCalls: [
        { name: "run_command", input: { command: "touch -d 2100-01-01T00:00:00 ." }, id: "call_t" },
      ],
    };
    const model = await startModelServer(turns(touchTurn, doneTurn));
    const home = tempDir("runyard-chat-home-");
    const ownWorkspaces = tempDir("runyard-chat-workspaces-");
    const token = await runnerToken(server.url);
    const start = () =>
      startRunner(server.url, token, {
        id: "chat-runner",
        labels: "chat-expiry",
        env: { RUNYARD_HOME: home, RUNYARD_WORKSPACE_DIR: ownWorkspaces },
      });
    let chatRunner = await start();
    try {
      const first = await submitAgent({
        agent: "openai",
        prompt: "keep this folder for ever",
        labels: ["chat-expiry"],
        env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
      });
      const done = await waitForRun(server.url, first, isFinal, 60_000);
      expect(done.status, JSON.stringify(done.error)).toBe("success");
      const chat = join(ownWorkspaces, "chat-runner", "chats", `${first}-openai`);
      expect(existsSync(chat)).toBe(true);
      await chatRunner.kill();
      chatRunner = await start();
      // The date the agent gave its folder is not the runner's to keep it by: whatever it says,
      // the folder counts as used no later than now.
      expect(statSync(chat).mtimeMs).toBeLessThanOrEqual(Date.now());
      await chatRunner.kill();
      const eightDaysAgo = new Date(Date.now() - 8 * 24 * 3600 * 1000);
      lutimesSync(chat, eightDaysAgo, eightDaysAgo);
      chatRunner = await start();
      expect(existsSync(chat)).toBe(false);
    } finally {
      await chatRunner.kill();
      await model.stop();
    }
  });

  it("refuses a message to a run still running, and to a workflow run", async () => {
    const workflow = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      workflow: "name: w\nsteps:\n  - name: s\n    command: echo hi\n",
    });
    await waitForRun(server.url, workflow.body.run_id, isFinal, 30_000);
    const answer = await api<{ error: { code: string; hint: string } }>(
      server.url,
      "POST",
      `/api/runs/${workflow.body.run_id}/messages`,
      { text: "hello" },
    );
    expect(answer.status).toBe(400);
    expect(answer.body.error.hint).toContain("agent runs");
  });
});
