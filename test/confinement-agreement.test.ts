import { existsSync, mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
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
} from "./helpers/server.js";
import { type ModelServer, startModelServer, type Turn, turns } from "./model-server/server.js";

/**
 * One confinement decision (core/work-folders.ts), asked by the server at submit and by the runner
 * before it starts anything: both refuse the same folders with the same codes, for workflow steps
 * and agent tasks, on a runner with its bubblewrap sandbox on and on one with it off.
 *
 * The server lists two roots for steps and agent tasks, `shared` and `serverOnly`; its runner lists
 * `shared` only. A member's folder under neither is refused at submit; one under `serverOnly`, or
 * a link under `shared` leading out, passes the submit and is refused by the runner, with the code
 * the submit would have given. A platform admin's link into the runner's home likewise.
 */

const apiKey = "sk-test-key-confinement-0123";
const writeTurn: Turn = {
  toolCalls: [{ name: "write_file", input: { path: "hello.txt", content: "hello\n" }, id: "call_w" }],
};
const doneTurn: Turn = { text: "Done." };

let server: Proc;
let serverUrl: string;
let model: ModelServer;
let member: string;
let runnerToken: string;
let shared: string;
let serverOnly: string;
let elsewhere: string;

interface Answer {
  run_id?: string;
  error?: { code: string; message: string; hint: string };
}

function stepBody(cwd: string, marker: string): Record<string, unknown> {
  const step = `{name: write, action: shell.run, args: {cwd: "${cwd}", script: "echo ${marker} > ${marker}.txt"}}`;
  const workflow = `version: v0.1\nname: confinement\nsteps:\n  - ${step}\n`;
  return { kind: "workflow", workflow, vars: {} };
}

function agentBody(cwd: string, marker: string): Record<string, unknown> {
  return {
    kind: "agent",
    agent: "openai",
    prompt: marker,
    cwd,
    env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
  };
}

const kinds = [
  { kind: "step", code: "STEP_CWD_NOT_ALLOWED", body: stepBody },
  { kind: "agent task", code: "AGENT_CWD_NOT_ALLOWED", body: agentBody },
] as const;

let serial = 0;
const markerOf = (name: string) => `${name}-${++serial}`;

function submit(body: Record<string, unknown>, token: string) {
  return api<Answer>(serverUrl, "POST", "/api/runs", body, token);
}

/**
 * Submits what `body` makes of `cwd` (accepted), and gives the code the runner refused it with once the run ended: the
 * run's error or a step's. Nothing was written in `folder`, and the model was never asked.
 */
async function refusedByRunner(
  body: (cwd: string, marker: string) => Record<string, unknown>,
  cwd: string,
  token: string,
  folder: string,
): Promise<string> {
  const marker = markerOf("refused");
  const answer = await submit(body(cwd, marker), token);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  const runId = answer.body.run_id ?? "";
  const run = await waitForRun(serverUrl, runId, isFinal, 60_000);
  expect(run.status).toBe("failed");
  expect(existsSync(join(folder, `${marker}.txt`))).toBe(false);
  expect(existsSync(join(folder, "hello.txt"))).toBe(false);
  expect(model.requests.filter((request) => request.rawBody.includes(marker))).toHaveLength(0);
  const events = await readEvents(serverUrl, runId);
  const codes = [
    run.error?.code,
    ...events.flatMap((event) => {
      const error = (event as { error?: { code?: string } }).error;
      return error?.code ? [error.code] : [];
    }),
  ];
  return codes.find((code) => code?.endsWith("_CWD_NOT_ALLOWED")) ?? JSON.stringify(events);
}

beforeAll(async () => {
  const root = tempDir("runyard-confinement-");
  shared = join(root, "shared");
  serverOnly = join(root, "server-only");
  elsewhere = join(root, "elsewhere");
  for (const folder of [shared, serverOnly, elsewhere]) mkdirSync(folder, { recursive: true });
  const config = join(root, "runyard.yaml");
  writeFileSync(
    config,
    [
      "step_cwd_roots:",
      `  - ${shared}`,
      `  - ${serverOnly}`,
      "agent_cwd_roots:",
      `  - ${shared}`,
      `  - ${serverOnly}`,
      "",
    ].join("\n"),
  );
  model = await startModelServer(turns(writeTurn, doneTurn));
  const port = await freePort();
  server = startCli(["server", "--port", String(port), "--home", join(root, "home"), "--config", config], {
    RUNYARD_ADMIN_TOKEN: adminToken,
  });
  serverUrl = (await server.waitFor(/listening on http:\/\/[^\s]+/)).replace("listening on ", "");
  const made = async (body: Record<string, unknown>) => {
    const answer = await api<{ token: string }>(serverUrl, "POST", "/api/tokens", body);
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    return answer.body.token;
  };
  // A user of no tenant, as an operator hands one out: confined, and served by the operator's runner.
  member = await made({ kind: "user", name: "member" });
  runnerToken = await made({ kind: "runner", name: "operator runner" });
}, 120_000);

afterAll(async () => {
  await server?.kill();
  await model?.stop();
});

describe("at submit, a member's folder under none of the server's roots", () => {
  for (const { kind, code, body } of kinds) {
    it(`is refused for a ${kind} with ${code}, naming the setting to change`, async () => {
      const answer = await submit(body(join(elsewhere, "app"), markerOf("submit")), member);
      expect(answer.status).toBe(400);
      expect(answer.body.error?.code).toBe(code);
      expect(answer.body.error?.message).toMatch(/(step|agent)_cwd_roots \(RUNYARD_(STEP|AGENT)_CWD_ROOTS\)/);
    });
  }
});

describe.each<{ sandbox: string; env: Record<string, string>; isolation: string }>([
  { sandbox: "on", env: {}, isolation: "sandbox" },
  { sandbox: "off", env: { RUNYARD_SANDBOX: "off" }, isolation: "none" },
])("a runner with its sandbox $sandbox", ({ sandbox, env, isolation }) => {
  let runner: Proc;
  let runnerHome: string;

  beforeAll(async () => {
    runnerHome = tempDir("runyard-runner-home-");
    runner = await startRunner(serverUrl, runnerToken, {
      id: `runner-sandbox-${sandbox}`,
      env: {
        ...env,
        RUNYARD_HOME: runnerHome,
        RUNYARD_STEP_CWD_ROOTS: shared,
        RUNYARD_AGENT_CWD_ROOTS: shared,
      },
    });
    const { body } = await api<Array<{ id: string; isolation: string }>>(serverUrl, "GET", "/api/runners");
    expect(body.find((seen) => seen.id === `runner-sandbox-${sandbox}`)?.isolation).toBe(isolation);
  }, 120_000);

  afterAll(async () => {
    await runner?.kill();
  });

  for (const { kind, code, body } of kinds) {
    it(`runs a member's ${kind} under a root both list`, async () => {
      const folder = join(shared, `${sandbox}-${kind.replace(" ", "-")}`);
      mkdirSync(folder, { recursive: true });
      const marker = markerOf("inside");
      const answer = await submit(body(folder, marker), member);
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      const run = await waitForRun(serverUrl, answer.body.run_id ?? "", isFinal, 60_000);
      expect(run.status, JSON.stringify(run.error)).toBe("success");
      expect(existsSync(join(folder, kind === "step" ? `${marker}.txt` : "hello.txt"))).toBe(true);
    });

    it(`refuses a member's ${kind} under a root only the server lists, with ${code}, before it runs`, async () => {
      const folder = join(serverOnly, `${sandbox}-${kind.replace(" ", "-")}`);
      mkdirSync(folder, { recursive: true });
      expect(await refusedByRunner(body, folder, member, folder)).toBe(code);
    });

    it(`refuses a member's ${kind} whose folder is a link under a shared root leading out, with ${code}`, async () => {
      const target = tempDir("runyard-link-target-");
      const link = join(shared, `link-${sandbox}-${kind.replace(" ", "-")}`);
      symlinkSync(target, link);
      expect(await refusedByRunner(body, link, member, target)).toBe(code);
    });

    it(`refuses a platform admin's ${kind} whose folder is a link into the runner's home, with ${code}`, async () => {
      const links = tempDir("runyard-admin-links-");
      const link = join(links, "home");
      symlinkSync(runnerHome, link);
      expect(await refusedByRunner(body, link, adminToken, runnerHome)).toBe(code);
    });
  }
});
