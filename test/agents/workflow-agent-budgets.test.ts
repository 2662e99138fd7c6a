import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { finished, runCli } from "../helpers/cli.js";
import { adminToken, api, isFinal, type RunView, readEvents, waitForRun } from "../helpers/server.js";
import { hasTools, type SharedAgentRunner, startSharedAgentRunner } from "../helpers/shared-agent-runner.js";
import type { RecordedRequest } from "../model-server/server.js";

/**
 * `agent.run` steps of workflow runs through a real server and a shared sandboxed runner, with
 * the built-in `openai` agent against the scripted model server (gpt-4.1 lists at $2 per million
 * input tokens): the tenant's spend budget admits, holds and stops them as it does agent runs,
 * and a step whose agent no runner of its host has fails at once, saying which agents they have.
 */

const million = { input_tokens: 1_000_000, output_tokens: 0 };
let rig: SharedAgentRunner;

const stepWorkflow = (agent = "openai") => `name: budgeted
steps:
  - name: ask
    action: agent.run
    args:
      agent: ${agent}
      model: gpt-4.1
      prompt: Answer for \${WHO}.
`;

const asks = (who: string) => (r: RecordedRequest) => hasTools(r) && r.rawBody.includes(`Answer for ${who}`);

/** Submits the workflow as acme's member; answers the run's id. */
async function submitAs(who: string, workflow = stepWorkflow(), token = rig.attacker): Promise<string> {
  const submitted = await api<{ run_id: string }>(
    rig.server.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow, vars: { WHO: who } },
    token,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  return submitted.body.run_id;
}

async function ended(runId: string): Promise<{ view: RunView; events: RunEvent[] }> {
  const view = await waitForRun(rig.server.url, runId, isFinal, 150_000);
  return { view, events: await readEvents(rig.server.url, runId) };
}

const stepEnd = (events: RunEvent[]) =>
  events.find(
    (e): e is Extract<RunEvent, { type: "step.finished" }> => e.type === "step.finished" && e.step === "ask",
  );

beforeAll(async () => {
  rig = await startSharedAgentRunner({
    name: "step-budgets",
    runnerId: "step-budget-runner",
    readme: "notes\n",
    apiKey: "sk-test-step-budget-9c4d",
  });
  const set = await api(rig.server.url, "PUT", "/api/budgets/tenants/acme", { usd_per_day: 3 });
  expect(set.status, JSON.stringify(set.body)).toBe(200);
}, 120_000);

afterAll(async () => {
  await rig?.stop();
});

describe("agent.run steps under a tenant's spend budget", () => {
  it("holds what is left for a running step: one starting meanwhile fails with BUDGET_EXCEEDED, the first runs on", async () => {
    let open: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => {
      open = resolve;
    });
    let alphaAsked: () => void = () => undefined;
    const asked = new Promise<void>((resolve) => {
      alphaAsked = resolve;
    });
    rig.model.setScript({
      conversations: [
        {
          match: (r) => {
            const mine = asks("alpha")(r);
            if (mine) alphaAsked();
            return mine;
          },
          turns: [{ text: "alpha done", usage: { input_tokens: 500_000, output_tokens: 0 }, after: gate }],
        },
        { match: asks("bravo"), turns: [{ text: "bravo done", usage: million }] },
      ],
    });
    const alpha = await submitAs("alpha");
    // Alpha's turn is under way (its model call waits on the gate): it holds all that is left.
    await asked;
    const bravo = await submitAs("bravo");
    const refused = await ended(bravo);
    expect(refused.view.status).toBe("failed");
    const end = stepEnd(refused.events);
    expect(end?.status).toBe("failed");
    expect(end?.error?.code).toBe("BUDGET_EXCEEDED");
    expect(end?.error?.message).toBe(
      "what is left of tenant acme's daily budget of $3 ($3.0000) is held by 1 agent turn running now",
    );
    expect(finished(refused.events).error?.code).toBe("BUDGET_EXCEEDED");
    // Bravo's agent never asked the model.
    expect(rig.model.requests.some(asks("bravo"))).toBe(false);
    open();
    const first = await ended(alpha);
    expect(first.view.status, JSON.stringify(first.view.error)).toBe("success");
  }, 300_000);

  it("stops a running step once its spend crosses what was left, and refuses the next at its start", async () => {
    rig.model.setScript({
      conversations: [
        {
          match: asks("charlie"),
          turns: [
            { toolCalls: [{ name: "list_files", input: { path: "." } }], usage: million },
            { text: "charlie done", usage: { input_tokens: 10, output_tokens: 0 } },
          ],
        },
      ],
    });
    // $1 spent by alpha: $2 left, given whole to charlie (the hold alpha had was given back).
    const charlie = await ended(await submitAs("charlie"));
    expect(charlie.view.status).toBe("failed");
    const stopped = stepEnd(charlie.events);
    expect(stopped?.error?.code).toBe("BUDGET_EXCEEDED");
    expect(stopped?.error?.message).toMatch(
      /^the turn's spend of \$2\.0000\d* took tenant acme's daily budget of \$3 past its limit \(\$2\.0000 was left/,
    );
    const delta = await ended(await submitAs("delta"));
    const refused = stepEnd(delta.events);
    expect(refused?.error?.code).toBe("BUDGET_EXCEEDED");
    expect(refused?.error?.message).toMatch(
      /^tenant acme's daily budget of \$3 is spent \(\$3\.0000\d* of \$3\)/,
    );
    expect(refused?.error?.hint).toMatch(/runyard tenant budget set acme --usd-per-day/);
    expect(rig.model.requests.some(asks("delta"))).toBe(false);
    // The CLI shows the step's reason.
    const shown = await runCli([
      "runs",
      "show",
      delta.view.run_id,
      "--server",
      rig.server.url,
      "--token",
      adminToken,
    ]);
    expect(shown.stdout + shown.stderr).toContain("BUDGET_EXCEEDED");
  }, 300_000);

  it("fails a step whose agent no runner of its host has at once, naming the agents they have", async () => {
    const run = await submitAs("echo", stepWorkflow("gemini"));
    const { view, events } = await ended(run);
    expect(view.status).toBe("failed");
    const end = stepEnd(events);
    expect(end?.error?.code).toBe("AGENT_NOT_INSTALLED");
    expect(end?.error?.message).toMatch(
      /^step "ask" runs agent gemini on host "local", and no runner has it \(their agents: step-budget-runner: [^)]*openai/,
    );
    expect(end?.error?.hint).toMatch(/runyard agents install gemini/);
  }, 120_000);

  it("refuses a prompt made huge by a variable at the step, and a deep output_schema at submit", async () => {
    const run = await submitAs("x".repeat(100_000));
    const { events } = await ended(run);
    const end = stepEnd(events);
    expect(end?.error?.code).toBe("INVALID_INPUT");
    expect(end?.error?.message).toBe(
      'the prompt of step "ask" is 100012 characters once its variables are replaced, more than the limit of 100000',
    );
    expect(end?.error?.hint).toMatch(/as a file/);
    let nested = "{type: string}";
    for (let i = 0; i < 20; i++) nested = `{type: object, properties: {a: ${nested}}}`;
    const deep = await api<{ error: { code: string; message: string } }>(
      rig.server.url,
      "POST",
      "/api/runs",
      { kind: "workflow", workflow: `${stepWorkflow()}      output_schema: ${nested}\n`, vars: { WHO: "y" } },
      rig.attacker,
    );
    expect(deep.status).toBe(400);
    expect(deep.body.error.message).toMatch(
      /workflow\.yaml:9:22: output_schema of step "ask" nests 41 levels deep, more than the limit of 12/,
    );
  }, 120_000);

  it("shows another tenant's member none of a step's prompt, output or exports", async () => {
    const runs = await api<{ runs: Array<{ run_id: string }> }>(
      rig.server.url,
      "GET",
      "/api/runs",
      undefined,
      rig.victim,
    );
    expect(runs.status).toBe(200);
    expect(JSON.stringify(runs.body)).not.toContain("budgeted");
    const list = await api<{ runs: Array<{ run_id: string }> }>(rig.server.url, "GET", "/api/runs");
    const theirs = list.body.runs.map((r) => r.run_id);
    expect(theirs.length).toBeGreaterThan(0);
    for (const runId of theirs) {
      for (const path of [
        `/api/runs/${runId}`,
        `/api/runs/${runId}/workflow`,
        `/api/runs/${runId}/log`,
        `/api/runs/${runId}/events/page`,
      ]) {
        const read = await api(rig.server.url, "GET", path, undefined, rig.victim);
        expect(read.status, path).toBe(404);
      }
      const events = await fetch(
        new URL(`/api/runs/${runId}/events?after=0&access_token=${rig.victim}`, rig.server.url),
      );
      expect(events.status).toBe(404);
      expect(await events.text()).not.toContain("Answer for");
    }
  }, 60_000);
});
