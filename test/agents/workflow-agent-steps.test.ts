/**
 * `action: agent.run` steps with a real agent CLI (Claude Code) against the scripted model
 * server, in `runyard run`: an answer matching its output_schema becomes the step's exports, read
 * by a later step's `when:` and command; a first answer that does not match gets one more turn
 * of the same session with the fault shown; an answer that never matches fails the step with the
 * last fault and an excerpt of the answer.
 */
import { dirname } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { adapterFor } from "../../src/agents/registry.js";
import type { RunEvent } from "../../src/core/events.js";
import { agentCli } from "../helpers/agent-cli.js";
import { finished, parseEvents, runCli, tempDir, writeWorkflow } from "../helpers/cli.js";
import {
  isFinal,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  waitForRun,
} from "../helpers/server.js";
import {
  type ModelServer,
  type RecordedRequest,
  startModelServer,
  type Turn,
} from "../model-server/server.js";

const pkg = adapterFor("claude_code")?.package;
const claude = pkg ? agentCli("claude_code", pkg.name, pkg.version, pkg.bin) : undefined;
const apiKey = "sk-agent-step-key-5d2c";
const hasTools = (r: RecordedRequest) => ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

const workflow = `name: triage
steps:
  - name: triage
    action: agent.run
    args:
      agent: claude_code
      prompt: Triage the report "\${REPORT}".
      output_schema:
        type: object
        required: [severity, count]
        properties:
          severity: {type: string, enum: [low, high]}
          count: {type: integer}
  - name: page
    action: cmd.run
    when: \${severity} == "high"
    args:
      cmd: echo "paging for \${severity} x\${count}"
  - name: file
    action: cmd.run
    when: \${severity} == "low"
    args:
      cmd: echo filed
`;

let model: ModelServer | undefined;
afterEach(async () => {
  await model?.stop();
  model = undefined;
});

async function run(turns: Turn[]): Promise<{ code: number | null; events: RunEvent[]; stderr: string }> {
  model = await startModelServer({
    conversations: [
      { match: (r) => r.path === "/v1/messages" && hasTools(r), turns },
      { turns: [{ text: "A title" }] },
    ],
  });
  const home = tempDir("runyard-agent-step-home-");
  const file = writeWorkflow(workflow);
  const result = await runCli(["run", file, "--json", "--var", "REPORT=disk full"], {
    cwd: tempDir("runyard-agent-step-cwd-"),
    env: {
      PATH: `${dirname(claude!)}:${process.env.PATH}`,
      RUNYARD_HOME: home,
      HOME: home,
      IS_SANDBOX: "1",
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: apiKey,
      CLAUDE_CODE_MAX_RETRIES: "1",
    },
  });
  return { code: result.code, events: parseEvents(result.stdout), stderr: result.stderr };
}

const stepEnd = (events: RunEvent[], step: string) =>
  events.find(
    (e): e is Extract<RunEvent, { type: "step.finished" }> => e.type === "step.finished" && e.step === step,
  );
const output = (events: RunEvent[], step: string) =>
  events
    .filter(
      (e): e is Extract<RunEvent, { type: "step.output" }> => e.type === "step.output" && e.step === step,
    )
    .map((e) => e.data)
    .join("");
const conversation = () => (model?.requests ?? []).filter((r) => r.path === "/v1/messages" && hasTools(r));

describe.skipIf(!claude)("agent.run steps in runyard run, with Claude Code", () => {
  it("exports the answer's fields, which a later step's when: and command read", async () => {
    const { code, events, stderr } = await run([
      { text: '{"severity": "high", "count": 2}', usage: { input_tokens: 300, output_tokens: 12 } },
    ]);
    expect(code, stderr + JSON.stringify(events.slice(-3))).toBe(0);
    expect(events.find((e) => e.type === "vars.exported" && e.step === "triage")).toMatchObject({
      vars: { severity: "high", count: "2" },
    });
    expect(output(events, "page")).toContain("paging for high x2");
    expect(stepEnd(events, "file")?.status).toBe("skipped");
    // The prompt reached the agent with the variable and the schema in it, and usage was reported.
    const asked = JSON.stringify(conversation()[0]?.body);
    expect(asked).toContain("disk full");
    expect(asked).toContain('\\"enum\\":[\\"low\\",\\"high\\"]');
    expect(events.some((e) => e.type === "agent.usage")).toBe(true);
  }, 240_000);

  it("gives a first answer that does not match one more turn, with the fault shown", async () => {
    const { code, events, stderr } = await run([
      { text: "It looks serious, about two reports." },
      { text: '```json\n{"severity": "low", "count": 1}\n```' },
    ]);
    expect(code, stderr + JSON.stringify(events.slice(-3))).toBe(0);
    expect(stepEnd(events, "triage")).toMatchObject({ status: "success", attempts: 2 });
    expect(output(events, "triage")).toContain("did not match output_schema");
    const retry = JSON.stringify(conversation().at(-1)?.body);
    expect(retry).toContain("did not match the required JSON Schema");
    // The same session: the first answer is in the retry's history.
    expect(retry).toContain("It looks serious");
    expect(output(events, "file")).toContain("filed");
    expect(stepEnd(events, "page")?.status).toBe("skipped");
  }, 300_000);

  it("fails the step when the answer never matches, with the last fault and the answer", async () => {
    const { code, events } = await run([
      { text: '{"severity": "urgent"}' },
      { text: '{"severity": "urgent", "count": 1}' },
    ]);
    expect(code).toBe(1);
    const end = stepEnd(events, "triage");
    expect(end?.status).toBe("failed");
    expect(end?.error?.code).toBe("AGENT_OUTPUT_INVALID");
    expect(end?.error?.message).toContain("/severity must be equal to one of the allowed values");
    expect(end?.error?.message).toContain("urgent");
    expect(stepEnd(events, "page")).toBeUndefined();
    expect(finished(events).status).toBe("failed");
    // No key anywhere in what the run reported.
    expect(JSON.stringify(events)).not.toContain(apiKey);
  }, 300_000);
});

describe.skipIf(!claude)("agent.run steps through a server, on a sandboxed runner", () => {
  it("runs the turn on a runner with the agent, and the next step reads its exports", async () => {
    model = await startModelServer({
      conversations: [
        {
          match: (r) => r.path === "/v1/messages" && hasTools(r),
          turns: [{ text: '{"severity": "high", "count": 5}' }],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const server = await startTestServer();
    // The runner's own key and endpoint, as an operator sets them: the workflow names none.
    const runner = await startRunner(server.url, await runnerToken(server.url), {
      id: "agent-steps",
      env: {
        PATH: `${dirname(claude!)}:${process.env.PATH}`,
        IS_SANDBOX: "1",
        ANTHROPIC_BASE_URL: model.url,
        ANTHROPIC_API_KEY: apiKey,
        CLAUDE_CODE_MAX_RETRIES: "1",
      },
    });
    try {
      const runId = await submit(server.url, workflow, { REPORT: "disk full" });
      await waitForRun(server.url, runId, isFinal, 240_000);
      const events = await readEvents(server.url, runId);
      expect(finished(events).status, JSON.stringify(finished(events).error)).toBe("success");
      expect(events.find((e) => e.type === "vars.exported" && e.step === "triage")).toMatchObject({
        vars: { severity: "high", count: "5" },
      });
      expect(output(events, "page")).toContain("paging for high x5");
      expect(stepEnd(events, "file")?.status).toBe("skipped");
      expect(events.some((e) => e.type === "agent.usage")).toBe(true);
      expect(JSON.stringify(events)).not.toContain(apiKey);
    } finally {
      await runner.kill();
      await server.proc.kill();
    }
  }, 300_000);
});
