import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { tempDir } from "../helpers/cli.js";
import {
  api,
  isFinal,
  type Proc,
  type RunView,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { hasTools } from "../helpers/shared-agent-runner.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

/*
 * `agent.run` steps in saved workflows started three ways, through a real server and a
 * sandboxed runner of the tenant with the built-in `openai` agent against the scripted model
 * server: run by name, by a hook's signed delivery and by a schedule's tick. Each run's step
 * answers its output_schema and a later step reads the export. A teammate's saved workflow runs
 * with the rights of who triggered it: its turns count against the triggerer's budget.
 */

let server: TestServer;
let runner: Proc;
let model: ModelServer;
let ada: string;
let amy: string;

const triage = (name: string, extra = "") => `name: ${name}
${extra}steps:
  - name: triage
    action: agent.run
    args:
      agent: openai
      model: gpt-4.1
      prompt: Triage for \${WHO}.
      output_schema:
        type: object
        required: [severity]
        properties:
          severity: {type: string, enum: [low, high]}
  - name: page
    action: cmd.run
    args:
      cmd: echo "severity=\${severity}"
`;

async function userToken(username: string, role: "admin" | "member"): Promise<string> {
  const password = `${username}-password-123`;
  const added = await api(server.url, "POST", "/api/users", { username, role, password, tenant_id: "acme" });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  const login = await api<{ token: string }>(server.url, "POST", "/api/auth/login", { username, password });
  expect(login.status).toBe(200);
  return login.body.token;
}

async function save(token: string, name: string, workflow: string): Promise<void> {
  const saved = await api(server.url, "POST", "/api/workflows", { name, workflow }, token);
  expect(saved.status, JSON.stringify(saved.body)).toBe(201);
}

async function ended(runId: string): Promise<{ view: RunView & { trigger: string }; events: RunEvent[] }> {
  const view = (await waitForRun(server.url, runId, isFinal, 150_000)) as RunView & { trigger: string };
  return { view, events: await readEvents(server.url, runId) };
}

function expectTriaged(events: RunEvent[], severity: string): void {
  const last = events.at(-1);
  expect(last?.type === "run.finished" && last.status, JSON.stringify(last)).toBe("success");
  expect(events.find((e) => e.type === "vars.exported" && e.step === "triage")).toMatchObject({
    vars: { severity },
  });
  const said = events
    .filter(
      (e): e is Extract<RunEvent, { type: "step.output" }> => e.type === "step.output" && e.step === "page",
    )
    .map((e) => e.data)
    .join("");
  expect(said).toContain(`severity=${severity}`);
}

beforeAll(async () => {
  model = await startModelServer({
    conversations: [{ match: hasTools, turns: [{ text: '{"severity": "high"}' }] }],
  });
  server = await startTestServer(tempDir(), {
    RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS: "1",
    RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "100000",
  });
  ada = await userToken("ada", "admin");
  amy = await userToken("amy", "member");
  const acmeRunner = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
    kind: "runner",
    name: "acme agents",
    tenant_id: "acme",
  });
  runner = await startRunner(server.url, acmeRunner.body.token, {
    id: "acme-agents",
    env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: "sk-test-triggers-41a7" },
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await server?.proc.kill("SIGKILL");
  await model?.stop();
});

describe("agent.run steps in saved workflows", () => {
  it("run by name: the answer's fields are the step's exports", async () => {
    await save(ada, "triage", triage("triage"));
    const started = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/workflows/triage/runs",
      { vars: { WHO: "by-name" } },
      ada,
    );
    expect(started.status, JSON.stringify(started.body)).toBe(201);
    const { events } = await ended(started.body.run_id);
    expectTriaged(events, "high");
  }, 200_000);

  it("started by a hook's signed delivery", async () => {
    const made = await api<{ secret: string; url: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "triage-hook", workflow: "triage" },
      ada,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const body = JSON.stringify({ report: "disk full" });
    const delivered = await fetch(new URL(made.body.url, server.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": `sha256=${createHmac("sha256", made.body.secret).update(body).digest("hex")}`,
      },
      body,
    });
    expect(delivered.status).toBe(202);
    const { run_id } = (await delivered.json()) as { run_id: string };
    const { view, events } = await ended(run_id);
    expect(view.trigger).toBe("webhook");
    expectTriaged(events, "high");
  }, 200_000);

  it("started by a schedule's tick", async () => {
    await save(ada, "triage-tick", triage("triage-tick", 'schedule: {cron: "* * * * * *", overlap: skip}\n'));
    let runId: string | undefined;
    const deadline = Date.now() + 60_000;
    while (!runId && Date.now() < deadline) {
      const list = await api<{ runs: Array<{ run_id: string; name: string; trigger: string }> }>(
        server.url,
        "GET",
        "/api/runs",
        undefined,
        ada,
      );
      runId = list.body.runs.find((r) => r.name === "triage-tick" && r.trigger === "schedule")?.run_id;
      if (!runId) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(runId).toBeDefined();
    // No more ticks once the first has been seen.
    expect((await api(server.url, "DELETE", "/api/workflows/triage-tick", undefined, ada)).status).toBe(200);
    const { view, events } = await ended(runId as string);
    expect(view.trigger).toBe("schedule");
    expectTriaged(events, "high");
  }, 200_000);

  it("a teammate's saved workflow runs with the rights of who triggered it: its turn counts against their budget", async () => {
    const set = await api(server.url, "PUT", "/api/budgets/users/amy", { usd_per_day: 0 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const asked = model.requests.length;
    const byAmy = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/workflows/triage/runs",
      { vars: { WHO: "amy" } },
      amy,
    );
    expect(byAmy.status, JSON.stringify(byAmy.body)).toBe(201);
    const refused = await ended(byAmy.body.run_id);
    const end = refused.events.find((e) => e.type === "step.finished" && e.step === "triage");
    expect(end).toMatchObject({ status: "failed", error: { code: "BUDGET_EXCEEDED" } });
    expect(end?.type === "step.finished" && end.error?.message).toMatch(
      /^user amy's daily budget of \$0 is spent/,
    );
    expect(model.requests.length).toBe(asked);
    // The workflow's author (ada) triggers it: her turn runs.
    const byAda = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/workflows/triage/runs",
      { vars: { WHO: "ada" } },
      ada,
    );
    expectTriaged((await ended(byAda.body.run_id)).events, "high");
  }, 200_000);
});
