/**
 * One task fanned out to three agents at once (the real Claude Code and Codex CLIs, and the
 * built-in loop), each in its own worktree and branch, compared side by side at the end. One
 * scripted model server answers all three in their own wire formats.
 */
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../../src/agents/claude-code.js";
import { codexAgent } from "../../src/agents/codex.js";
import type { AgentAdapter } from "../../src/agents/types.js";
import type { RunEvent } from "../../src/core/events.js";
import { agentCli } from "../helpers/agent-cli.js";
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

function cli(adapter: AgentAdapter): string | undefined {
  const pkg = adapter.package;
  return pkg ? agentCli(adapter.name, pkg.name, pkg.version, pkg.bin) : undefined;
}
const claude = cli(claudeCodeAgent);
const codex = cli(codexAgent);

const withTools = (r: RecordedRequest) => Array.isArray((r.body as { tools?: unknown })?.tools);

let server: TestServer;
let runner: Proc;
let model: ModelServer;
let bare: string;
let events: RunEvent[];
let runId: string;

describe.skipIf(!claude || !codex)("fan-out of one task to three agents", () => {
  beforeAll(async () => {
    const root = tempDir("runyard-fanout-");
    bare = seedBareRepo(join(root, "app.git"));

    model = await startModelServer({
      conversations: [
        {
          match: (r) => r.path === "/v1/messages" && withTools(r),
          turns: [
            {
              toolCalls: [{ name: "Write", input: { file_path: "hello.py", content: 'print("hello")\n' } }],
              usage: { input_tokens: 400, output_tokens: 40 },
            },
            { text: "Claude wrote hello.py.", usage: { input_tokens: 500, output_tokens: 6 } },
          ],
        },
        {
          match: (r) => r.path === "/v1/responses",
          turns: [
            {
              // Codex's change does not pass the tests: the comparison has to show it.
              toolCalls: [
                {
                  name: "exec_command",
                  input: { cmd: "printf 'print(1/0)\\n' > hello.py", login: false, yield_time_ms: 30000 },
                },
              ],
              usage: { input_tokens: 1000, output_tokens: 30 },
            },
            { text: "Codex wrote hello.py.", usage: { input_tokens: 1100, output_tokens: 5 } },
          ],
        },
        {
          match: (r) => r.path === "/v1/chat/completions",
          turns: [
            {
              toolCalls: [
                { name: "write_file", input: { path: "hello.py", content: 'print("hello", flush=True)\n' } },
              ],
              usage: { input_tokens: 100, output_tokens: 20 },
            },
            { text: "The loop wrote hello.py.", usage: { input_tokens: 150, output_tokens: 5 } },
          ],
        },
        { turns: [{ text: "ok" }] },
      ],
    });
    server = await startTestServer();
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "fan-out",
      capacity: 3,
      env: {
        PATH: `${dirname(claude ?? "")}:${dirname(codex ?? "")}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: join(root, "workspaces"),
        CLAUDE_CODE_MAX_RETRIES: "1",
      },
    });
    const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "agent",
      agents: ["claude_code", "codex", "openai"],
      prompt: "Create hello.py that prints hello.",
      repo: { url: bare, push: true },
      tests: { command: "python3 hello.py" },
      env: {
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: "sk-ant-fanout",
        OPENAI_BASE_URL: `${model.url}/v1`,
        OPENAI_API_KEY: "sk-fanout",
      },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    runId = submitted.body.run_id;
    await waitForRun(server.url, runId, isFinal, 150_000);
    events = await readEvents(server.url, runId);
  }, 200_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await model?.stop();
  });

  it("runs every agent in its own worktree and branch, and compares them side by side", () => {
    const finished = events.at(-1);
    if (finished?.type !== "run.finished") throw new Error("no run.finished");
    expect(finished.status).toBe("failed");
    expect(finished.error?.message).toContain("1 of 3 agents failed");
    const byAgent = Object.fromEntries((finished.agents ?? []).map((a) => [a.agent, a]));
    expect(byAgent.claude_code).toMatchObject({
      status: "success",
      pushed: true,
      tests: { status: "success" },
      input_tokens: 900,
      output_tokens: 46,
      diff_stats: { files: 1, insertions: 1, deletions: 0 },
    });
    expect(byAgent.openai).toMatchObject({
      status: "success",
      pushed: true,
      input_tokens: 250,
      output_tokens: 25,
    });
    expect(byAgent.codex).toMatchObject({
      status: "failed",
      pushed: false,
      tests: { status: "failed" },
      error: { code: "AGENT_TESTS_FAILED" },
    });
    const show = (branch: string) =>
      execFileSync("git", ["--git-dir", bare, "show", `${branch}:hello.py`], { encoding: "utf8" });
    expect(show(`runyard/${runId}-claude_code`)).toBe('print("hello")\n');
    expect(show(`runyard/${runId}-openai`)).toBe('print("hello", flush=True)\n');
    const branches = execFileSync("git", ["--git-dir", bare, "branch", "--list"], { encoding: "utf8" });
    expect(branches).not.toContain("codex");
  });

  it("took up the three agents at once, not one after another", () => {
    const agents = ["claude_code", "codex", "openai"];
    const prepared = agents.map((agent) =>
      events.findIndex((e) => e.type === "step.started" && e.step === "prepare" && e.host === agent),
    );
    const firstAgentEnd = Math.min(
      ...agents.map((agent) =>
        events.findIndex((e) => e.type === "step.finished" && e.step === "agent" && e.host === agent),
      ),
    );
    expect(Math.min(...prepared)).toBeGreaterThan(0);
    expect(Math.max(...prepared)).toBeLessThan(firstAgentEnd);
  });
});
