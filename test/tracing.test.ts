// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { createHmac } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { type OtlpReceiver, type ReceivedSpan, startOtlpReceiver } from "./helpers/otlp-receiver.js";
import {
  api,
  isFinal,
  type Proc,
  startCli,
  startRunner,
  startTestServer,
  stepDir,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { type ModelServer, startModelServer, turns } from "./model-server/server.js";

/**
 * Traces of runs over OTLP, end to end: a real server and runner, the server's OpenTelemetry SDK
 * exporting to a scripted OTLP/HTTP receiver on 127.0.0.1, whose bodies the tests decode.
 */

const secretValue = "tok-7c1e9a-never-exported";
const apiKey = "sk-trace-key-5e8d1c";

let receiver: OtlpReceiver;
let server: TestServer;
let runner: Proc;
let member: string;

const submit = async (body: Record<string, unknown>, headers: Record<string, string> = {}) => {
  const response = await fetch(new URL("/api/runs", server.url), {
    method: "POST",
    headers: { authorization: `Bearer ${member}`, "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });
  const answer = (await response.json()) as { run_id: string };
  expect(response.status, JSON.stringify(answer)).toBe(201);
  return answer.run_id;
};
const submitTo = async (url: string, workflow: string) =>
  (await api<{ run_id: string }>(url, "POST", "/api/runs", { kind: "workflow", workflow })).body.run_id;
const ended = (runId: string) => waitForRun(server.url, runId, isFinal, 90_000);
const spanOf = (spans: ReceivedSpan[], runId: string, name: string) =>
  spans.filter((span) => span.attributes["runyard.run.id"] === runId && span.name === name);
const runSpanOf = (spans: ReceivedSpan[], runId: string) =>
  spans.find((span) => span.attributes["runyard.run.id"] === runId && span.name.startsWith("run "));

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  server = await startTestServer(undefined, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_SERVICE_NAME: "runyard-traced",
    OTEL_EXPORTER_OTLP_HEADERS: "x-collector-key=abc%20123",
  });
  const token = async (body: Record<string, string>) =>
    (await api<{ token: string }>(server.url, "POST", "/api/tokens", body)).body.token;
  member = await token({ kind: "user", name: "tracer", tenant_id: "traced" });
  runner = await startRunner(
    server.url,
    await token({ kind: "runner", name: "traced runner", tenant_id: "traced" }),
    {
      id: "traced-runner",
      capacity: 4,
    },
  );
  const deploy = `name: deploy
steps:
  - name: roll
    action: shell.run
    args: {script: "echo rolling"}
`;
  const saved = await api(server.url, "POST", "/api/workflows", { name: "deploy", workflow: deploy }, member);
  expect(saved.status, JSON.stringify(saved.body)).toBe(201);
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await receiver?.close();
});

describe("a workflow run's trace", () => {
  let dir: string;
  let runId: string;
  let spans: ReceivedSpan[];

  beforeAll(async () => {
    dir = stepDir();
    const workflow = `name: traced
steps:
  - name: build
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        printf '%s' "$TRACEPARENT" > traceparent
        echo "seen $API_TOKEN"
        echo "API_TOKEN_COPY=$API_TOKEN" >> "$RUNYARD_OUTPUT"
  - name: flaky
    retry_count: 1
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        test -f flaky-ran && exit 0
        touch flaky-ran
        exit 3
  - name: ship
    action: workflow.call
    args: {workflow: deploy}
`;
    runId = await submit({ kind: "workflow", workflow, vars: { API_TOKEN: secretValue } });
    expect((await ended(runId)).status).toBe("success");
    spans = await receiver.waitFor((all) => runSpanOf(all, runId) !== undefined);
  }, 120_000);

  it("has the submit as its root, the run under it and each step attempt under the run, all in one trace", () => {
    const run = runSpanOf(spans, runId)!;
    const [submitSpan] = spanOf(spans, runId, "POST /api/runs");
    expect(submitSpan).toMatchObject({ parentSpanId: "", traceId: run.traceId, service: "runyard-traced" });
    expect(submitSpan?.attributes["http.response.status_code"]).toBe(201);
    expect(run).toMatchObject({ name: "run traced", parentSpanId: submitSpan?.spanId });
    expect(run.attributes).toMatchObject({
      "runyard.tenant.id": "traced",
      "runyard.workflow": "traced",
      "runyard.run.status": "success",
    });
    const build = spanOf(spans, runId, "step build");
    expect(build).toHaveLength(1);
    expect(build[0]).toMatchObject({ traceId: run.traceId, parentSpanId: run.spanId });
    expect(build[0]?.attributes).toMatchObject({
      "runyard.step": "build",
      "runyard.step.attempt": 1,
      "runyard.runner.id": "traced-runner",
      "process.exit.code": 0,
    });
    // The job's wait for a runner, inside the attempt.
    const [wait] = spans.filter(
      (span) => span.name === "queue wait" && span.parentSpanId === build[0]?.spanId,
    );
    expect(wait).toBeDefined();
    expect(wait!.start).toBeLessThanOrEqual(wait!.end);
  });

  it("has the runner's part of each attempt inside it: entering the sandbox, then the command", () => {
    const [build] = spanOf(spans, runId, "step build");
    const inside = (name: string) =>
      spans.filter((span) => span.name === name && span.parentSpanId === build?.spanId);
    const [entry] = inside("sandbox entry");
    const [command] = inside("command");
    expect(entry).toBeDefined();
    expect(command).toBeDefined();
    expect(entry!.attributes).toMatchObject({ "runyard.run.id": runId, "runyard.step": "build" });
    // One after the other, within the attempt, the command ending with it.
    expect(entry!.start).toBeGreaterThanOrEqual(build!.start);
    expect(entry!.end).toBe(command!.start);
    expect(command!.start).toBeLessThanOrEqual(command!.end);
    expect(command!.end).toBe(build!.end);
    // A step that called a workflow ran nothing on a runner: it has neither.
    const [ship] = spanOf(spans, runId, "step ship");
    expect(spans.filter((span) => span.parentSpanId === ship?.spanId && span.name === "command")).toEqual([]);
  });

  it("has a span per attempt of a retried step, the failed one with its exit code", () => {
    const run = runSpanOf(spans, runId)!;
    const flaky = spanOf(spans, runId, "step flaky").sort(
      (a, b) => Number(a.attributes["runyard.step.attempt"]) - Number(b.attributes["runyard.step.attempt"]),
    );
    expect(
      flaky.map((span) => [span.attributes["runyard.step.attempt"], span.attributes["process.exit.code"]]),
    ).toEqual([
      [1, 3],
      [2, 0],
    ]);
    expect(flaky[0]?.status).toBe(2); // ERROR
    expect(flaky.every((span) => span.parentSpanId === run.spanId)).toBe(true);
  });

  it("puts a workflow.call's child run under the call step's span, in the caller's trace", async () => {
    const run = runSpanOf(spans, runId)!;
    const [ship] = spanOf(spans, runId, "step ship");
    const view = (
      await api<{ calls: { run_id: string }[] }>(server.url, "GET", `/api/runs/${runId}`, undefined, member)
    ).body;
    const childId = view.calls[0]!.run_id;
    const all = await receiver.waitFor((received) => runSpanOf(received, childId) !== undefined);
    const child = runSpanOf(all, childId)!;
    expect(child).toMatchObject({ traceId: run.traceId, parentSpanId: ship?.spanId, name: "run deploy" });
    expect(spanOf(all, childId, "step roll")[0]).toMatchObject({
      traceId: run.traceId,
      parentSpanId: child.spanId,
    });
  });

  it("hands each step TRACEPARENT naming its attempt's span, so its program joins the trace", () => {
    const [build] = spanOf(spans, runId, "step build");
    const given = readFileSync(join(dir, "traceparent"), "utf8");
    expect(given).toBe(`00-${build?.traceId}-${build?.spanId}-01`);
  });

  it("exports no variable's value nor secret, and sends the configured headers", () => {
    for (const body of receiver.bodies()) expect(body).not.toContain(secretValue);
    expect(receiver.headers()[0]?.["x-collector-key"]).toBe("abc 123");
  });
});

describe("a caller's trace and a retry", () => {
  it("makes a run submitted with a traceparent a child of the caller's span, in the caller's trace", async () => {
    const traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    const callerSpan = "00f067aa0ba902b7";
    const runId = await submit(
      {
        kind: "workflow",
        workflow: "name: joined\nsteps:\n  - name: a\n    action: shell.run\n    args: {script: 'true'}\n",
      },
      { traceparent: `00-${traceId}-${callerSpan}-01`, tracestate: "vendor=abc" },
    );
    await ended(runId);
    const spans = await receiver.waitFor((all) => runSpanOf(all, runId) !== undefined);
    const [submitSpan] = spanOf(spans, runId, "POST /api/runs");
    expect(submitSpan).toMatchObject({ traceId, parentSpanId: callerSpan });
    expect(runSpanOf(spans, runId)).toMatchObject({ traceId, parentSpanId: submitSpan?.spanId });
  });

  it("makes a hook delivery's run a child of the sender's span", async () => {
    const secret = "hook-secret-for-traces-0123";
    const made = await api<{ url: string }>(
      server.url,
      "POST",
      "/api/hooks",
      { name: "traced-hook", workflow: "deploy", secret },
      member,
    );
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const body = JSON.stringify({ ref: "refs/heads/main" });
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const senderSpan = "b7ad6b7169203331";
    const response = await fetch(new URL(made.body.url, server.url), {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}`,
        traceparent: `00-${traceId}-${senderSpan}-01`,
      },
      body,
    });
    const answer = (await response.json()) as { run_id: string };
    expect(response.status, JSON.stringify(answer)).toBe(202);
    await ended(answer.run_id);
    const spans = await receiver.waitFor((all) => runSpanOf(all, answer.run_id) !== undefined);
    const [delivery] = spanOf(spans, answer.run_id, "POST /api/hooks/:name");
    expect(delivery).toMatchObject({ traceId, parentSpanId: senderSpan });
    expect(runSpanOf(spans, answer.run_id)).toMatchObject({ traceId, parentSpanId: delivery?.spanId });
    expect(spanOf(spans, answer.run_id, "step roll")[0]?.traceId).toBe(traceId);
  });

  it("ignores an invalid traceparent, as the W3C spec says: the run gets a trace of its own", async () => {
    const runId = await submit(
      {
        kind: "workflow",
        workflow: "name: alone\nsteps:\n  - name: a\n    action: shell.run\n    args: {script: 'true'}\n",
      },
      { traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01" },
    );
    await ended(runId);
    const spans = await receiver.waitFor((all) => runSpanOf(all, runId) !== undefined);
    const [submitSpan] = spanOf(spans, runId, "POST /api/runs");
    expect(submitSpan?.parentSpanId).toBe("");
    expect(submitSpan?.traceId).not.toMatch(/^0+$/);
  });

  it("links a retry's run span to the run it retries", async () => {
    const dir = stepDir();
    const workflow = `name: retried\nsteps:\n  - name: check\n    action: shell.run\n    args:\n      cwd: ${dir}\n      script: test -f fixed\n`;
    const first = await submit({ kind: "workflow", workflow });
    expect((await ended(first)).status).toBe("failed");
    writeFileSync(join(dir, "fixed"), "");
    const retry = await api<{ run_id: string }>(server.url, "POST", `/api/runs/${first}/retry`, {}, member);
    expect(retry.status, JSON.stringify(retry.body)).toBe(201);
    expect((await ended(retry.body.run_id)).status).toBe("success");
    const spans = await receiver.waitFor((all) => runSpanOf(all, retry.body.run_id) !== undefined);
    const firstSpan = runSpanOf(spans, first)!;
    expect(firstSpan.status).toBe(2);
    expect(runSpanOf(spans, retry.body.run_id)?.links).toEqual([
      { traceId: firstSpan.traceId, spanId: firstSpan.spanId, attributes: { "runyard.link": "retry_of" } },
    ]);
    expect(existsSync(join(dir, "fixed"))).toBe(true);
  });
});

describe("an approval's trace", () => {
  it("has the approval's wait as a span under its step's, with the decision", async () => {
    const workflow = `name: gated
steps:
  - name: go-live
    action: approval
    args: {message: "Ship it?", approvers: ["role:member"], timeout_seconds: 600}
  - name: ship
    action: cmd.run
    args: {cmd: echo shipped}
`;
    const runId = await submit({ kind: "workflow", workflow });
    await waitForRun(server.url, runId, (run) =>
      run.steps.some((s) => s.name === "go-live" && s.status === "waiting"),
    );
    const answer = await api(server.url, "POST", `/api/runs/${runId}/steps/go-live/approve`, {}, member);
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    expect((await ended(runId)).status).toBe("success");
    const spans = await receiver.waitFor((all) => runSpanOf(all, runId) !== undefined);
    const [step] = spanOf(spans, runId, "step go-live");
    const [approval] = spanOf(spans, runId, "approval go-live");
    expect(approval).toMatchObject({ parentSpanId: step?.spanId, traceId: step?.traceId });
    expect(approval?.attributes["runyard.approval.decision"]).toBe("approved");
    expect(approval!.start).toBeLessThanOrEqual(approval!.end);
  });
});

describe("tracing's own failures", () => {
  it("runs a workflow as usual when the collector cannot be reached", async () => {
    const away = await startOtlpReceiver();
    await away.close(); // its port now refuses connections
    const lonely = await startTestServer(undefined, { OTEL_EXPORTER_OTLP_ENDPOINT: away.endpoint });
    try {
      const token = (
        await api<{ token: string }>(lonely.url, "POST", "/api/tokens", { kind: "runner", name: "r" })
      ).body.token;
      const lonelyRunner = await startRunner(lonely.url, token, { id: "untraced-runner" });
      try {
        const runId = await submitTo(
          lonely.url,
          "name: plain\nsteps:\n  - name: a\n    action: shell.run\n    args: {script: 'echo ok'}\n",
        );
        expect((await waitForRun(lonely.url, runId, isFinal, 90_000)).status).toBe("success");
      } finally {
        await lonelyRunner.kill();
      }
    } finally {
      await lonely.proc.kill();
    }
  }, 120_000);

  it("refuses to start on a sampler it does not know, naming the setting and what it takes", async () => {
    const proc = startCli(["server", "--port", "0", "--home", tempDir()], {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
      OTEL_TRACES_SAMPLER: "sometimes",
    });
    expect(await proc.exited).not.toBe(0);
    expect(proc.output()).toContain('OTEL_TRACES_SAMPLER="sometimes" is not valid');
    expect(proc.output()).toContain("parentbased_always_on");
  });
});

describe("an agent run's trace", () => {
  let model: ModelServer;

  afterAll(async () => {
    await model?.stop();
  });

  it("has the turn as a span and each model call as a GenAI span, with tokens and no key", async () => {
    model = await startModelServer(
      turns(
        {
          toolCalls: [
            { name: "write_file", input: { path: "note.txt", content: secretValue }, id: "call_1" },
          ],
          usage: { input_tokens: 120, output_tokens: 30 },
        },
        { text: "Wrote note.txt.", usage: { input_tokens: 200, output_tokens: 8 } },
      ),
    );
    const runId = await submit({
      kind: "agent",
      agent: "openai",
      prompt: "write the note",
      model: "gpt-traced",
      env: { OPENAI_BASE_URL: `${model.url}/v1`, OPENAI_API_KEY: apiKey },
    });
    expect((await ended(runId)).status).toBe("success");
    const spans = await receiver.waitFor((all) => runSpanOf(all, runId) !== undefined);
    const run = runSpanOf(spans, runId)!;
    const [turn] = spanOf(spans, runId, "invoke_agent openai");
    expect(turn).toMatchObject({ traceId: run.traceId, parentSpanId: run.spanId });
    expect(turn?.attributes).toMatchObject({ "gen_ai.system": "openai", "gen_ai.usage.input_tokens": 320 });
    expect(turn?.events.map((event) => [event.name, event.attributes["gen_ai.tool.name"]])).toContainEqual([
      "gen_ai.tool.call",
      "write_file",
    ]);
    const calls = spans.filter(
      (span) => span.attributes["runyard.run.id"] === runId && span.name.startsWith("chat"),
    );
    expect(
      calls.map((span) => [
        span.parentSpanId,
        span.attributes["gen_ai.usage.input_tokens"],
        span.attributes["gen_ai.usage.output_tokens"],
      ]),
    ).toEqual([
      [turn?.spanId, 120, 30],
      [turn?.spanId, 200, 8],
    ]);
    for (const call of calls) {
      expect(call.attributes).toMatchObject({ "gen_ai.system": "openai", "gen_ai.operation.name": "chat" });
      expect(call.attributes["gen_ai.request.model"]).toBeDefined();
    }
    for (const body of receiver.bodies()) {
      expect(body).not.toContain(apiKey);
      expect(body).not.toContain(secretValue);
    }
  }, 120_000);
});
