import { existsSync, mkdirSync, readFileSync, symlinkSync } from "node:fs";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../src/agents/claude-code.js";
import { mainScript, pinnedCli, withTools } from "./helpers/agent-turn.js";
import { tempDir } from "./helpers/cli.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { adminToken, api, type RunView, readEvents, waitForRun } from "./helpers/server.js";
import { type ModelServer, startModelServer } from "./model-server/server.js";

/**
 * Where a run may work (core/work-folders.ts), through a real `runyard up` with its sandbox on:
 * a member's folder outside the operator's roots is a 4xx at submit; a platform admin's may be any
 * folder but runyard's own, and their steps and Claude Code turns write there.
 */

const claude = pinnedCli(claudeCodeAgent);
let up: SandboxedUp & { listed: string };
let model: ModelServer;

beforeAll(async () => {
  // Every turn writes hello.py in its cwd (named in the prompt), then says so; a follow-up's
  // first request holds two answers already, so it gets the third.
  model = await startModelServer(
    mainScript({ text: "ok" }, [
      { text: "Writing.", toolCalls: [{ name: "Bash", input: { command: "echo 'print(1)' > hello.py" } }] },
      { text: "done" },
      { text: "still here" },
    ]),
  );
  const listed = tempDir("runyard-listed-");
  const env: Record<string, string> = {
    RUNYARD_STEP_CWD_ROOTS: listed,
    RUNYARD_AGENT_CWD_ROOTS: listed,
    ANTHROPIC_BASE_URL: model.url,
    ANTHROPIC_API_KEY: "sk-ant-test-key",
  };
  // The pinned Claude Code CLI, found on the runner's PATH as an operator's own install would be.
  if (claude) env.PATH = `${dirname(claude)}:${process.env.PATH ?? ""}`;
  up = { ...(await startSandboxedUp(env)), listed };
}, 120_000);

afterAll(async () => {
  await up?.proc.kill();
  await model?.stop();
});

const ended = (view: RunView) => !["queued", "running", "waiting"].includes(view.status);

function workflow(cwd: string, script: string): string {
  return [
    "version: v0.1",
    "name: folders",
    "steps:",
    "  - name: write",
    "    action: shell.run",
    "    args:",
    `      cwd: ${cwd}`,
    "      script: |",
    `        ${script}`,
    "",
  ].join("\n");
}

function submitWorkflow(cwd: string, script: string, token: string) {
  return api<{ run_id: string; error?: { code: string; message: string; hint: string } }>(
    up.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: workflow(cwd, script), vars: {}, file: "folders.yaml" },
    token,
  );
}

/** The OpenRunner-style call of the issue: a Claude Code task in `cwd`. */
function submitOpenRunner(cwd: string, token = adminToken) {
  return api<{ run_id: string; error?: { code: string; message: string; hint: string } }>(
    up.url,
    "POST",
    "/api/runs",
    { input: { text: "create hello.py" }, metadata: { agent_type: "claude_code", cwd } },
    token,
  );
}

describe("a member's folder outside the operator's roots", () => {
  it("is refused at submit for a workflow step, with STEP_CWD_NOT_ALLOWED at the cwd key's line and column", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    const { status, body } = await submitWorkflow(elsewhere, "touch planted", up.userToken);
    expect(status).toBe(400);
    expect(body.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(body.error?.message).toMatch(/^folders\.yaml:7:7: step "write": /);
    expect(body.error?.message).toContain("step_cwd_roots (RUNYARD_STEP_CWD_ROOTS)");
    expect(existsSync(join(elsewhere, "planted"))).toBe(false);
  });

  it("is refused at submit for an agent task, with AGENT_CWD_NOT_ALLOWED naming agent_cwd_roots", async () => {
    const elsewhere = tempDir("runyard-elsewhere-");
    const { status, body } = await submitOpenRunner(elsewhere, up.userToken);
    expect(status).toBe(400);
    expect(body.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(body.error?.message).toContain("agent_cwd_roots (RUNYARD_AGENT_CWD_ROOTS)");
  });

  it("is accepted under step_cwd_roots, and the step writes there", async () => {
    const own = join(up.listed, "app");
    mkdirSync(own, { recursive: true });
    const { status, body } = await submitWorkflow(own, "echo member > member.txt", up.userToken);
    expect(status, JSON.stringify(body)).toBe(201);
    const run = await waitForRun(up.url, body.run_id, ended);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(readFileSync(join(own, "member.txt"), "utf8")).toBe("member\n");
  });
});

describe("a platform admin's folder", () => {
  it("may be a fresh folder under /tmp, outside every root: the step writes its file there through the sandbox", async () => {
    const folder = tempDir("runyard-admin-step-");
    const { status, body } = await submitWorkflow(folder, "echo admin > written.txt", adminToken);
    expect(status, JSON.stringify(body)).toBe(201);
    const run = await waitForRun(up.url, body.run_id, ended);
    expect(run.status, JSON.stringify(await readEvents(up.url, body.run_id))).toBe("success");
    expect(readFileSync(join(folder, "written.txt"), "utf8")).toBe("admin\n");
  });

  it("is refused at submit in the runner's and server's home, for a step and an agent task", async () => {
    const step = await submitWorkflow(join(up.home, "runners"), "touch planted", adminToken);
    expect(step.status).toBe(400);
    expect(step.body.error?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(step.body.error?.message).toContain("runyard's own folders");
    const agent = await submitOpenRunner(up.home);
    expect(agent.status).toBe(400);
    expect(agent.body.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
  });

  it("is refused by the runner when a link leads into its home, with the same codes and nothing written", async () => {
    const links = tempDir("runyard-admin-links-");
    symlinkSync(up.home, join(links, "home"));
    const step = await submitWorkflow(join(links, "home"), "echo x > planted.txt", adminToken);
    expect(step.status, JSON.stringify(step.body)).toBe(201);
    const stepRun = await waitForRun(up.url, step.body.run_id, ended);
    expect(stepRun.status).toBe("failed");
    expect(JSON.stringify(await readEvents(up.url, step.body.run_id))).toContain("STEP_CWD_NOT_ALLOWED");
    const agent = await submitOpenRunner(join(links, "home"));
    expect(agent.status, JSON.stringify(agent.body)).toBe(201);
    const agentRun = await waitForRun(up.url, agent.body.run_id, ended, 60_000);
    expect(agentRun.status).toBe("failed");
    expect(agentRun.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(existsSync(join(up.home, "planted.txt"))).toBe(false);
    expect(existsSync(join(up.home, "hello.py"))).toBe(false);
  });
});

describe.skipIf(!claude)("the platform admin's Claude Code task through a sandboxing runyard up", () => {
  it("writes hello.py in a fresh folder under /tmp, and its follow-up resumes the session", async () => {
    const folder = tempDir("runyard-admin-claude-");
    const first = await submitOpenRunner(folder);
    expect(first.status, JSON.stringify(first.body)).toBe(201);
    const done = await waitForRun(up.url, first.body.run_id, ended, 120_000);
    expect(done.status, JSON.stringify(done.error)).toBe("success");
    expect(readFileSync(join(folder, "hello.py"), "utf8")).toBe("print(1)\n");

    const next = await api<{ run_id: string }>(up.url, "POST", `/api/runs/${first.body.run_id}/messages`, {
      text: "are you there",
    });
    expect(next.status, JSON.stringify(next.body)).toBe(201);
    const second = await waitForRun(up.url, next.body.run_id, ended, 120_000);
    const events = JSON.stringify(await readEvents(up.url, next.body.run_id));
    expect(events).not.toContain("No conversation found");
    expect(second.status, JSON.stringify(second.error)).toBe("success");
    // The follow-up's request carried the first turn: its prompt and its answers.
    const last = model.requests.filter(withTools).at(-1)?.rawBody ?? "";
    expect(last).toContain("create hello.py");
    expect(last).toContain("are you there");
    expect(last).toContain("Writing.");
    expect(events).toContain("still here");
    // The runner gave the CLI the first turn's session (--resume), and it went on in that session.
    const sessionOf = async (runId: string) => {
      const finished = (await readEvents(up.url, runId)).find((event) => event.type === "run.finished") as
        | { agents?: Array<{ session_id?: string }> }
        | undefined;
      return finished?.agents?.[0]?.session_id;
    };
    const firstSession = await sessionOf(first.body.run_id);
    expect(firstSession).toMatch(/^[0-9a-f-]{36}$/);
    expect(await sessionOf(next.body.run_id)).toBe(firstSession);
  });
});
