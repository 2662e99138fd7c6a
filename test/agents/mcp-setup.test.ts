/**
 * MCP servers, setup and copied files of agent tasks, end to end: a real server and runner (the
 * sandbox on, bubblewrap), the real Claude Code CLI against the scripted model server, and a tiny
 * stdio MCP server (test/fixtures/mcp/marker-server.mjs) the task copies into its worktree from
 * the runner's agent_files_dir. The scripted model calls the server's tool; the tool writes a
 * file in the worktree saying where it ran.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdirSync, readlinkSync, symlinkSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../../src/agents/claude-code.js";
import type { RunEvent } from "../../src/core/events.js";
import { pinnedCli } from "../helpers/agent-turn.js";
import { tempDir } from "../helpers/cli.js";
import { seedBareRepo } from "../helpers/git-repos.js";
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
} from "../helpers/server.js";
import { type ModelServer, type RecordedRequest, startModelServer } from "../model-server/server.js";

const claude = pinnedCli(claudeCodeAgent);
const apiKey = "sk-mcp-test-key-1f2e3d";
const hasTools = (r: RecordedRequest) =>
  r.path === "/v1/messages" && ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;
const toolNames = (r: RecordedRequest) =>
  ((r.body as { tools?: Array<{ name: string }> }).tools ?? []).map((tool) => tool.name);

let server: TestServer;
let model: ModelServer;
let runner: Proc;
let root: string;
let files: string;

beforeAll(async () => {
  if (!claude) return;
  root = tempDir("runyard-mcp-setup-");
  files = join(root, "files");
  mkdirSync(files);
  copyFileSync(
    join(import.meta.dirname, "../fixtures/mcp/marker-server.mjs"),
    join(files, "marker-server.mjs"),
  );
  writeFileSync(join(root, "outside-secret"), "not the task's\n");
  symlinkSync(join(root, "outside-secret"), join(files, "leak"));
  model = await startModelServer({
    conversations: [
      {
        match: hasTools,
        turns: [
          { toolCalls: [{ name: "mcp__marker__mark", input: { text: "hello from the model" } }] },
          { text: "Done." },
        ],
      },
      { turns: [{ text: "A title" }] },
    ],
  });
  server = await startTestServer();
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "mcp-runner",
    env: {
      PATH: `${dirname(claude)}:${process.env.PATH}`,
      RUNYARD_WORKSPACE_DIR: join(root, "workspaces"),
      RUNYARD_AGENT_FILES_DIR: files,
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: apiKey,
      CLAUDE_CODE_MAX_RETRIES: "1",
    },
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
});

async function agentRun(body: Record<string, unknown>): Promise<{ runId: string; events: RunEvent[] }> {
  const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
    kind: "agent",
    agent: "claude_code",
    prompt: "mark the worktree",
    ...body,
  });
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const runId = submitted.body.run_id;
  await waitForRun(server.url, runId, isFinal, 180_000);
  return { runId, events: await readEvents(server.url, runId) };
}

const stepOutput = (events: RunEvent[], step: string) =>
  events.flatMap((e) => (e.type === "step.output" && e.step === step ? [e.data] : [])).join("");

describe.skipIf(!claude)("MCP servers, setup and copied files of an agent task", () => {
  it("Claude Code calls a stdio MCP server it started inside the sandbox; setup ran before the first turn", async () => {
    const bare = seedBareRepo(join(root, "mark.git"));
    const { runId, events } = await agentRun({
      repo: { url: bare, push: true, branch: "marked" },
      copy_files: ["marker-server.mjs"],
      setup: "echo setup-said-hello; node --version > setup-ran.txt",
      mcp_servers: { marker: { command: "node", args: ["marker-server.mjs"], env: { MARK_ENV: "given" } } },
    });
    const run = await waitForRun(server.url, runId, isFinal, 1000);
    expect(run.status, JSON.stringify(run.error ?? events.slice(-5))).toBe("success");
    // The model was offered the server's tool, and its call reached it.
    const asked = model.requests.filter(hasTools);
    expect(toolNames(asked[0]!)).toContain("mcp__marker__mark");
    // The run says which servers its agent was given (the run's page shows it), never their env.
    const said = events.flatMap((e) => (e.type === "notice" ? [e.message] : []));
    expect(said).toContain("MCP servers: marker (node)");
    expect(JSON.stringify(said)).not.toContain("given");
    const result = events.find((e) => e.type === "agent.tool_result");
    expect(JSON.stringify(result)).toContain("marked in");
    // The setup step ran, said so, and finished before the agent's first word.
    expect(stepOutput(events, "setup")).toContain("copied marker-server.mjs");
    expect(stepOutput(events, "setup")).toContain("setup-said-hello");
    const setupEnd = events.findIndex((e) => e.type === "step.finished" && e.step === "setup");
    const firstAgent = events.findIndex((e) => e.type.startsWith("agent."));
    expect(setupEnd).toBeGreaterThan(-1);
    expect(setupEnd).toBeLessThan(firstAgent);
    // What the tool and the setup wrote is on the pushed branch; the copied server is not.
    const show = (path: string) =>
      execFileSync("git", ["-C", bare, "show", `marked:${path}`], { encoding: "utf8" });
    const mark = JSON.parse(show("mcp-was-here.txt")) as {
      text: string;
      mnt: string;
      cwd: string;
      env: string;
    };
    expect(mark.text).toBe("hello from the model");
    expect(mark.env).toBe("given");
    // It ran in a mount namespace other than the test's: inside the turn's bubblewrap sandbox.
    expect(mark.mnt).not.toBe(readlinkSync("/proc/self/ns/mnt"));
    expect(show("setup-ran.txt")).toMatch(/^v\d+\./);
    const tree = execFileSync("git", ["-C", bare, "ls-tree", "--name-only", "marked"], { encoding: "utf8" });
    expect(tree).not.toContain("marker-server.mjs");
  }, 240_000);

  it("a failing setup ends the task with AGENT_SETUP_FAILED and its output, before any model call", async () => {
    const before = model.requests.length;
    const { runId, events } = await agentRun({
      repo: { url: seedBareRepo(join(root, "broken.git")), push: false },
      setup: "echo broken-setup-output >&2; exit 3",
    });
    const run = await waitForRun(server.url, runId, isFinal, 1000);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_SETUP_FAILED");
    expect(run.error?.message).toContain("exited with code 3");
    expect(run.error?.message).toContain("broken-setup-output");
    expect(stepOutput(events, "setup")).toContain("broken-setup-output");
    expect(events.some((e) => e.type === "step.started" && e.step === "agent")).toBe(false);
    expect(model.requests.length).toBe(before);
  }, 240_000);

  it("an MCP command the sandbox cannot find fails AGENT_MCP_UNAVAILABLE before the turn", async () => {
    const before = model.requests.length;
    const { runId } = await agentRun({
      repo: { url: seedBareRepo(join(root, "ghost.git")), push: false },
      mcp_servers: { ghost: { command: "no-such-mcp-server-anywhere" } },
    });
    const run = await waitForRun(server.url, runId, isFinal, 1000);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_MCP_UNAVAILABLE");
    expect(run.error?.message).toContain("no-such-mcp-server-anywhere");
    expect(model.requests.length).toBe(before);
  }, 240_000);

  it("copy_files refuses a path leading out of the runner's folder, at submit or on the runner", async () => {
    for (const path of ["../outside-secret", "/etc/passwd"]) {
      const refused = await api<{ error: { code: string; message: string } }>(
        server.url,
        "POST",
        "/api/runs",
        {
          kind: "agent",
          agent: "claude_code",
          prompt: "p",
          copy_files: [path],
        },
      );
      expect(refused.status).toBe(400);
      expect(refused.body.error.message).toContain("without ..");
    }
    const { runId } = await agentRun({
      repo: { url: seedBareRepo(join(root, "leak.git")), push: true, branch: "leaked" },
      copy_files: ["leak"],
    });
    const run = await waitForRun(server.url, runId, isFinal, 1000);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_FILES_NOT_ALLOWED");
    expect(run.error?.message).toContain("symbolic link leading out");
  }, 240_000);

  it("refuses MCP servers for the built-in loop, which has no MCP client, naming the agents that take them", async () => {
    const refused = await api<{ error: { message: string } }>(server.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      prompt: "p",
      mcp_servers: { x: { command: "x" } },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toMatch(/openai takes no MCP servers; claude_code, codex/);
  });
});
