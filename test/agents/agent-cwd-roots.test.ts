import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "../helpers/cli.js";
import {
  adminToken,
  api,
  freePort,
  isFinal,
  type Proc,
  type RunView,
  readEvents,
  startCli,
  startRunner,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer, type Turn, turns } from "../model-server/server.js";

/**
 * Where a member's agent may work: a real server whose config file lists `agent_cwd_roots`, a
 * runner of the member's tenant and one outside any tenant (the admin's), both given the same
 * root through RUNYARD_AGENT_CWD_ROOTS, and the built-in `openai` agent against the scripted
 * model server. The scripted agent writes `hello.txt` and then reads `secret.key` with its shell,
 * as the member in the issue did in the server's home.
 */

const apiKey = "sk-test-key-cwd-roots-0123";
let server: Proc;
let serverUrl: string;
let home: string;
let projects: string;
let model: ModelServer;
let member: string;
const runners: Proc[] = [];

const writeTurn: Turn = {
  toolCalls: [
    { name: "write_file", input: { path: "hello.txt", content: "hello\n" }, id: "call_w" },
    { name: "run_command", input: { command: "cat secret.key" }, id: "call_r" },
  ],
};
const doneTurn: Turn = { text: "Done." };

interface Answer {
  run_id?: string;
  error?: { code: string; message: string; hint: string };
}

async function token(body: Record<string, unknown>): Promise<string> {
  const made = await api<{ token: string }>(serverUrl, "POST", "/api/tokens", body);
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return made.body.token;
}

/** The native agent body with the scripted model as the task's own endpoint. */
function agentBody(prompt: string, cwd: string): Record<string, unknown> {
  return {
    kind: "agent",
    agent: "openai",
    prompt,
    cwd,
    env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
  };
}

async function runIds(): Promise<string[]> {
  const { body } = await api<{ runs: Array<{ id: string }> }>(serverUrl, "GET", "/api/runs?limit=500");
  return body.runs.map((run) => run.id);
}

/** Model requests of the task whose prompt holds `marker`. */
function requestsFor(marker: string): number {
  return model.requests.filter((request) => request.rawBody.includes(marker)).length;
}

beforeAll(async () => {
  const root = tempDir("runyard-cwd-roots-");
  home = join(root, "home");
  projects = join(root, "projects");
  mkdirSync(projects, { recursive: true });
  const config = join(root, "runyard.yaml");
  writeFileSync(config, `agent_cwd_roots:\n  - ${projects}\n`);
  model = await startModelServer(turns(writeTurn, doneTurn));
  const port = await freePort();
  server = startCli(["server", "--port", String(port), "--home", home, "--config", config], {
    RUNYARD_ADMIN_TOKEN: adminToken,
  });
  serverUrl = (await server.waitFor(/listening on http:\/\/[^\s]+/)).replace("listening on ", "");
  member = await token({ kind: "user", name: "member", tenant_id: "acme" });
  const acmeRunner = await token({ kind: "runner", name: "acme runner", tenant_id: "acme" });
  const ownRunner = await token({ kind: "runner", name: "operator runner" });
  const env = { RUNYARD_AGENT_CWD_ROOTS: projects };
  runners.push(await startRunner(serverUrl, acmeRunner, { id: "acme-runner", env }));
  runners.push(await startRunner(serverUrl, ownRunner, { id: "operator-runner", env }));
}, 60_000);

afterAll(async () => {
  for (const runner of runners) await runner.kill();
  await server?.kill();
  await model?.stop();
});

describe("a member's agent task works only under the operator's agent_cwd_roots", () => {
  it("refuses cwd = the server's home, through the native body and the OpenRunner-style body, and stores nothing", async () => {
    expect(existsSync(join(home, "secret.key"))).toBe(true);
    const before = await runIds();
    const native = await api<Answer>(
      serverUrl,
      "POST",
      "/api/runs",
      agentBody("native-home-task", home),
      member,
    );
    const openRunner = await api<Answer>(
      serverUrl,
      "POST",
      "/api/runs",
      {
        input: { text: "openrunner-home-task" },
        metadata: { agent_type: "openai", cwd: home },
      },
      member,
    );
    const workingDir = await api<Answer>(
      serverUrl,
      "POST",
      "/api/runs",
      { input: { text: "working-dir-task" }, metadata: { agent_type: "openai", working_dir: home } },
      member,
    );
    for (const [form, answer] of [
      ["native", native],
      ["metadata.cwd", openRunner],
      ["metadata.working_dir", workingDir],
    ] as const) {
      expect(answer.status, `${form}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.body.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
      expect(answer.body.error?.message).toContain(home);
      expect(answer.body.error?.hint).toContain("agent_cwd_roots");
    }
    expect(await runIds()).toEqual(before);
    expect(requestsFor("home-task")).toBe(0);
  });

  it("refuses a relative cwd and one that climbs out of a root with ..", async () => {
    const before = await runIds();
    for (const cwd of ["projects/app", `${projects}/../home`, `${projects}/app/../../home`]) {
      const answer = await api<Answer>(serverUrl, "POST", "/api/runs", agentBody("dots-task", cwd), member);
      expect(answer.status, `${cwd}: ${JSON.stringify(answer.body)}`).toBe(400);
      expect(answer.body.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
      expect(answer.body.error?.hint).toContain("agent_cwd_roots");
    }
    expect(await runIds()).toEqual(before);
  });

  it("runs a member's task in a folder under a listed root", async () => {
    const app = join(projects, "app");
    const answer = await api<Answer>(serverUrl, "POST", "/api/runs", agentBody("inside-task", app), member);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const run = await waitForRun(serverUrl, answer.body.run_id ?? "", isFinal, 60_000);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(existsSync(join(app, "hello.txt"))).toBe(true);
    expect(requestsFor("inside-task")).toBeGreaterThan(0);
  });

  it("accepts a symlink under the root that points at the server's home, then the runner refuses it before the agent runs", async () => {
    const link = join(projects, "link");
    symlinkSync(home, link);
    const homeBefore = readdirSync(home).sort();
    const answer = await api<Answer>(
      serverUrl,
      "POST",
      "/api/runs",
      agentBody("symlink-task", join(link, "sub")),
      member,
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const runId = answer.body.run_id ?? "";
    const run: RunView = await waitForRun(serverUrl, runId, isFinal, 60_000);
    expect(run.status).toBe("failed");
    expect(run.error?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(run.error?.message).toContain("symbolic link");
    const events = await readEvents(serverUrl, runId);
    const steps = events.flatMap((e) => (e.type === "step.finished" ? [`${e.step}:${e.status}`] : []));
    expect(steps[0]).toBe("prepare:failed");
    expect(steps).not.toContain("agent:success");
    expect(requestsFor("symlink-task")).toBe(0);
    expect(readdirSync(home).sort()).toEqual(homeBefore);
    expect(existsSync(join(home, "hello.txt"))).toBe(false);
  });

  it("lets an admin's task work in a folder outside every root", async () => {
    const outside = join(tempDir("runyard-admin-cwd-"), "work");
    const answer = await api<Answer>(serverUrl, "POST", "/api/runs", agentBody("admin-task", outside));
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const run = await waitForRun(serverUrl, answer.body.run_id ?? "", isFinal, 60_000);
    expect(run.status, JSON.stringify(run.error)).toBe("success");
    expect(existsSync(join(outside, "hello.txt"))).toBe(true);
  });
});
