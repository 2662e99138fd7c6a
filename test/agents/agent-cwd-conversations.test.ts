/**
 * An operator lists, as `agent_cwd_roots`, a folder that holds the runner's workspace folder (the
 * runner's working folder is a natural root for agents too). A member's task then names as its
 * `cwd` the folder of another conversation that the runner keeps there (a chat's folder, a live
 * task's worktree), to read it or to leave something its next turn (run with its submitter's env
 * and secrets) picks up. A real server and runner, the built-in `openai` agent against the
 * scripted model server.
 */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  startRunner,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

const apiKey = "sk-test-key-cwd-conversations-77";
const secret = "victim-chat-secret-2b9d41";
let server: Proc;
let serverUrl: string;
let model: ModelServer;
let runner: Proc;
let root: string;
const runnerId = "cwd-conversations-runner";

async function token(body: Record<string, unknown>): Promise<string> {
  const made = await api<{ token: string }>(serverUrl, "POST", "/api/tokens", body);
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return made.body.token;
}

const hasTools = (r: { body: unknown }) => ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

/** An `openai` task whose agent runs `command` once; its run. */
async function task(who: string, command: string, extra: Record<string, unknown> = {}) {
  model.setScript({
    conversations: [
      {
        match: hasTools,
        turns: [
          { toolCalls: [{ name: "run_command", input: { command }, id: "call_c" }] },
          { text: "Done." },
        ],
      },
      { turns: [{ text: "A title" }] },
    ],
  });
  const submitted = await api<{ run_id: string }>(
    serverUrl,
    "POST",
    "/api/runs",
    {
      kind: "agent",
      agent: "openai",
      prompt: command,
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
      ...extra,
    },
    who,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const run = await waitForRun(serverUrl, submitted.body.run_id, isFinal, 60_000);
  const events = await readEvents(serverUrl, run.run_id);
  const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
  return { run, output };
}

beforeAll(async () => {
  root = tempDir("runyard-cwd-conversations-");
  mkdirSync(join(root, "work"), { recursive: true });
  const config = join(root, "runyard.yaml");
  writeFileSync(config, `agent_cwd_roots:\n  - ${root}\n`);
  model = await startModelServer({ conversations: [] });
  const port = await freePort();
  server = startCli(
    ["server", "--port", String(port), "--home", join(root, "server-home"), "--config", config],
    {
      RUNYARD_ADMIN_TOKEN: adminToken,
    },
  );
  serverUrl = (await server.waitFor(/listening on http:\/\/[^\s]+/)).replace("listening on ", "");
  runner = await startRunner(serverUrl, await token({ kind: "runner", name: "operator runner" }), {
    id: runnerId,
    env: { RUNYARD_WORKSPACE_DIR: join(root, "work"), RUNYARD_AGENT_CWD_ROOTS: root },
  });
}, 60_000);

afterAll(async () => {
  await runner?.kill();
  await server?.kill();
  await model?.stop();
});

describe("a member's cwd under a root that holds the runner's workspace folder", () => {
  it("cannot be another conversation's chat folder: the runner refuses it before the agent runs", async () => {
    const victim = await token({ kind: "user", name: "victim" });
    const attacker = await token({ kind: "user", name: "attacker" });
    const first = await task(victim, `echo ${secret} > notes.txt`);
    expect(first.run.status, JSON.stringify(first.run.error)).toBe("success");
    const chat = join(root, "work", runnerId, "chats", `${first.run.run_id}-openai`);
    expect(existsSync(join(chat, "notes.txt"))).toBe(true);

    const { run, output } = await task(attacker, "cat notes.txt; echo planted > planted.txt", { cwd: chat });
    expect(output).not.toContain(secret);
    expect(existsSync(join(chat, "planted.txt"))).toBe(false);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
  }, 120_000);
});
