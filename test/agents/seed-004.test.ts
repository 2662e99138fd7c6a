/**
 * Seed 004's curl examples as the seed writes them (only host and port differ), against a real
 * server and runner with the real Claude Code CLI answering from the scripted model server.
 * The seed's `admin/admin` user is made first: runyard has no default passwords.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../../src/agents/claude-code.js";
import { agentCli } from "../helpers/agent-cli.js";
import { runCli } from "../helpers/cli.js";
import {
  adminToken,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

const run = promisify(execFile);
const pkg = claudeCodeAgent.package;
const claude = pkg ? agentCli("claude_code", pkg.name, pkg.version, pkg.bin) : undefined;

let server: TestServer;
let runner: Proc;
let model: ModelServer;
let base: string;

/** Runs one of the seed's curl lines through a shell, as a user would paste it. */
async function curl(line: string): Promise<string> {
  const { stdout } = await run("bash", ["-c", line.replaceAll("http://localhost:8090", base)], {
    timeout: 120_000,
  });
  return stdout;
}

const withTools = (r: { body: unknown }) => Array.isArray((r.body as { tools?: unknown })?.tools);

describe.skipIf(!claude)("the OpenRunner-style API with curl", () => {
  beforeAll(async () => {
    rmSync("/tmp/test/hello.py", { force: true });
    mkdirSync("/tmp/test", { recursive: true });
    model = await startModelServer({
      conversations: [
        {
          match: (r) => withTools(r) && r.rawBody.includes("create hello.py"),
          turns: [
            {
              toolCalls: [
                { name: "Write", input: { file_path: "/tmp/test/hello.py", content: 'print("hello")\n' } },
              ],
              usage: { input_tokens: 50, output_tokens: 10 },
            },
            { text: "Created hello.py.", usage: { input_tokens: 70, output_tokens: 4 } },
          ],
        },
        {
          match: withTools,
          turns: [{ text: "Hello! How can I help?", usage: { input_tokens: 9, output_tokens: 6 } }],
        },
        { turns: [{ text: "ok" }] },
      ],
    });
    server = await startTestServer();
    base = server.url;
    const added = await runCli(
      ["user", "add", "admin", "--role", "admin", "--password-stdin", "--home", server.home],
      {
        input: "admin\n",
        env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken },
      },
    );
    expect(added.code, added.stderr).toBe(0);
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "seed-004",
      env: {
        PATH: `${dirname(claude ?? "")}:${process.env.PATH}`,
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: "sk-ant-seed-004",
        CLAUDE_CODE_MAX_RETRIES: "1",
      },
    });
  }, 120_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await model?.stop();
  });

  // Fails until H1's work folders (issue 32 item 4) merge: the sandboxing runner refuses the
  // platform admin's cwd /tmp/test as outside its step roots, and the turn ends AGENT_CRASHED.
  it("health, agent availability, login, a streamed run and a chat, as that API's examples show them", async () => {
    expect(JSON.parse(await curl("curl http://localhost:8090/health")).ok).toBe(true);

    const agents = JSON.parse(await curl("curl http://localhost:8090/health/agents"));
    expect(agents.on_runners).toContain("claude_code");
    // Each agent's entry agrees with on_runners: not usable on the server's machine may still run on a runner.
    const claude = (agents.agents as { name: string; runners: number }[]).find(
      (a) => a.name === "claude_code",
    );
    expect(claude?.runners).toBeGreaterThan(0);
    expect(JSON.stringify(agents)).not.toContain("seed-004");
    expect(JSON.stringify(agents)).not.toContain("sk-ant-seed-004");

    const login = JSON.parse(
      await curl(`curl -X POST http://localhost:8090/api/auth/login \\
  -H "Content-Type: application/json" \\
  -d '{"username": "admin", "password": "admin"}'`),
    );
    const token: string = login.token;
    expect(token).toEqual(expect.any(String));

    const created = JSON.parse(
      await curl(`curl -X POST http://localhost:8090/api/runs \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer ${token}" \\
  -d '{
    "input": {"text": "create hello.py"},
    "metadata": {"agent_type": "claude_code", "cwd": "/tmp/test"}
  }'`),
    );
    const runId: string = created.run_id;
    expect(runId).toMatch(/^run_/);

    const stream = await curl(
      `curl -N "http://localhost:8090/api/runs/${runId}/events?access_token=${token}"`,
    );
    const events = stream
      .split("\n")
      .filter((line) => line.startsWith("data: "))
      .map((line) => JSON.parse(line.slice(6)));
    const types = events.map((e) => e.type);
    expect(types[0]).toBe("run.queued");
    expect(types).toContain("agent.tool_call");
    const finished = events.at(-1);
    expect(finished).toMatchObject({ type: "run.finished", status: "success" });
    expect(finished.agents[0]).toMatchObject({ agent: "claude_code", input_tokens: 120, output_tokens: 14 });
    expect(existsSync("/tmp/test/hello.py")).toBe(true);
    expect(readFileSync("/tmp/test/hello.py", "utf8")).toBe('print("hello")\n');

    const chat = JSON.parse(
      await curl(`curl -X POST http://localhost:8090/api/chat \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer ${token}" \\
  -d '{"message": "hello", "model": "claude"}'`),
    );
    expect(chat).toMatchObject({
      status: "success",
      message: "Hello! How can I help?",
      agent: "claude_code",
    });
    expect(chat.usage).toMatchObject({ input_tokens: 9, output_tokens: 6 });
  }, 180_000);
});
