/**
 * A member's task that names its own model endpoint gets none of the runner's credentials: a
 * real server and runner, the real Claude Code CLI, and two scripted model servers, the
 * operator's (the runner's ANTHROPIC_BASE_URL) and the member's (the task's).
 */
import { dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import { agentCli } from "../helpers/agent-cli.js";
import { mainScript } from "../helpers/agent-turn.js";
import { tempDir } from "../helpers/cli.js";
import {
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

const pkg = adapterFor("claude_code")?.package;
const claude = pkg ? agentCli("claude_code", pkg.name, pkg.version, pkg.bin) : undefined;

/** The runner's own: an API key, and its gateway's key sent as a header (Claude Code's ANTHROPIC_CUSTOM_HEADERS). */
const runnerKey = "sk-ant-runner-own-key-5150";
const gatewayKey = "gw-runner-gateway-key-8086";

let server: TestServer;
let runner: Proc;
let operatorModel: ModelServer;
let memberModel: ModelServer;
let member: string;

/** The member's Claude Code task with `fields` added, submitted and waited for to its end. */
async function memberTask(fields: Record<string, unknown>): Promise<void> {
  const submitted = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "agent", agent: "claude_code", prompt: "say done", ...fields },
    member,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  await waitForRun(server.url, submitted.body.run_id, isFinal, 90_000);
}

describe.skipIf(!claude)("a task that names its own endpoint", () => {
  beforeAll(async () => {
    server = await startTestServer();
    operatorModel = await startModelServer(mainScript({ text: "ok" }, [{ text: "Done." }]));
    memberModel = await startModelServer(mainScript({ text: "ok" }, [{ text: "Done." }]));
    const made = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "member",
    });
    member = made.body.token;
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "credentials-runner",
      env: {
        PATH: `${dirname(claude ?? "")}:${process.env.PATH}`,
        RUNYARD_WORKSPACE_DIR: tempDir("runyard-credentials-ws-"),
        CLAUDE_CODE_MAX_RETRIES: "0",
        ANTHROPIC_BASE_URL: operatorModel.url,
        ANTHROPIC_API_KEY: runnerKey,
        ANTHROPIC_CUSTOM_HEADERS: `x-gateway-key: ${gatewayKey}`,
        // Its warnings too: a runner that cannot sandbox says so, and these tests need one that does.
        RUNYARD_LOG_LEVEL: "warn",
      },
    });
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await operatorModel?.stop();
    await memberModel?.stop();
  });

  it("sends the member's server neither the runner's key nor its gateway's header", async () => {
    await memberTask({
      env: { ANTHROPIC_BASE_URL: memberModel.url, ANTHROPIC_API_KEY: "sk-ant-member-own-key" },
    });
    expect(memberModel.requests.length).toBeGreaterThan(0);
    const seen = JSON.stringify(memberModel.requests.map((request) => request.headers));
    expect(seen).toContain("sk-ant-member-own-key");
    expect(seen).not.toContain(runnerKey);
    expect(seen).not.toContain(gatewayKey);
  }, 120_000);

  // A task that points Claude Code elsewhere without naming an endpoint in its env, here through
  // `extra_args` (`--settings '{"env":{"ANTHROPIC_BASE_URL":...}}'`), or through the repo's own
  // `.claude/settings.json`: on a sandboxing runner (this one, as users have it) a member's Claude
  // Code holds a placeholder and the runner's proxy adds the key, so the key goes nowhere else. A
  // runner without the sandbox (a tenant's own, serving one owner) still hands its key to the CLI
  // and its shell (docs/agents.md).
  it("sends the runner's key nowhere else when the task's CLI arguments point Claude Code elsewhere", async () => {
    // What this guards holds on a runner that sandboxes; one whose bubblewrap probe failed says so.
    expect(runner.output()).not.toMatch(/run without a sandbox/);
    const before = memberModel.requests.length;
    await memberTask({
      extra_args: ["--settings", JSON.stringify({ env: { ANTHROPIC_BASE_URL: memberModel.url } })],
    });
    const seen = JSON.stringify(memberModel.requests.slice(before).map((request) => request.headers));
    expect(seen, `the runner said:\n${runner.output().slice(-4000)}`).not.toContain(runnerKey);
  }, 120_000);
});
