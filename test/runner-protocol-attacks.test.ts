import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import {
  type AssignMessage,
  assignedOneStep,
  oneStep,
  ProtocolRunner,
  stepResult,
  storedBytes,
  token,
} from "./helpers/protocol-runner.js";
import { api, isFinal, readEvents, startTestServer, type TestServer, waitForRun } from "./helpers/server.js";

/*
 * A runner that speaks the runner protocol itself, as one started with a tenant's own runner
 * token could: it takes its job and then reports whatever it likes. What it may not do is write
 * past what the server allows, or into anything but the job it holds.
 */

describe("a runner speaking the protocol itself", () => {
  const cap = 256 * 1024;
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(tempDir(), { RUNYARD_MAX_RUN_LOG_BYTES: String(cap) });
  }, 60_000);

  afterAll(async () => {
    await server?.proc.kill();
  });

  it("cannot store more than the run's log cap by reporting notices instead of output", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep(server, "notices");
    try {
      runner.send({ type: "accept", job_id: jobId });
      // 16 notices of 64 KiB each on its own step: four times the cap.
      const message = "n".repeat(64 * 1024);
      const notices = Array.from({ length: 16 }, () => ({
        type: "notice",
        level: "warn",
        message,
        step: payload.step,
        host: payload.host,
      }));
      runner.send({ type: "events", job_id: jobId, batch: 1, events: notices });
      await runner.next((m) => m.type === "ack" && m.batch === 1);
      runner.send({ type: "finished", job_id: jobId, batches: 1, result: stepResult });
      await runner.next((m) => m.type === "done");
      await waitForRun(server.url, runId, isFinal);
      const events = await readEvents(server.url, runId);
      expect(storedBytes(events)).toBeLessThanOrEqual(cap + 64 * 1024);
    } finally {
      runner.close();
    }
  }, 60_000);

  it("cannot store more than the run's log cap as an agent's messages, tool calls and results", async () => {
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "r" }),
      "transcripts",
      ["agent:claude_code", "mode:chat"],
    );
    try {
      const { status, body } = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "agent",
        agent: "claude_code",
        prompt: "add a README",
      });
      expect(status, JSON.stringify(body)).toBe(201);
      const assign = await runner.next<{
        type: "assign";
        job: { job_id: string; payload: { agent: string } };
      }>((m) => m.type === "assign");
      const { job_id: jobId, payload } = assign.job;
      runner.send({ type: "accept", job_id: jobId });
      // Four of each of 64 KiB: three times the cap, none of it step output.
      const text = "t".repeat(64 * 1024);
      const transcript = Array.from({ length: 4 }, (_, i) => [
        { type: "agent.message", agent: payload.agent, role: "assistant", text },
        { type: "agent.tool_call", agent: payload.agent, call_id: `c${i}`, tool: text, input: { text } },
        { type: "agent.tool_result", agent: payload.agent, call_id: `c${i}`, output: text },
        { type: "notice", level: "info", message: text },
        // A step of no pipeline, named at length: never on the run's record.
        { type: "step.started", step: `${text}-${i}`, host: payload.agent, attempt: 1 },
      ]).flat();
      runner.send({ type: "events", job_id: jobId, batch: 1, events: transcript });
      await runner.next((m) => m.type === "ack" && m.batch === 1);
      const events = await readEvents(server.url, body.run_id);
      let bytes = 0;
      for (const event of events) {
        if (event.type === "agent.message") bytes += event.text.length;
        if (event.type === "agent.tool_call") bytes += event.tool.length + JSON.stringify(event.input).length;
        if (event.type === "agent.tool_result") bytes += event.output.length;
        if (event.type === "notice") bytes += event.message.length;
      }
      expect(bytes).toBeLessThanOrEqual(cap + 2 * 64 * 1024);
      expect(events.some((e) => e.type === "step.started" && e.step.startsWith(text))).toBe(false);
      const record = await api(server.url, "GET", `/api/runs/${body.run_id}`);
      expect(JSON.stringify(record.body).length).toBeLessThan(16 * 1024);
    } finally {
      runner.close();
    }
  }, 60_000);

  it("cannot take spend back with negative usage, which would lift its tenant's budget", async () => {
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "refunds", tenant_id: "refunder" }),
      "refunder",
      ["agent:claude_code", "mode:chat"],
    );
    try {
      const member = await token(server, { kind: "user", name: "refunder member", tenant_id: "refunder" });
      const { body } = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "claude_code", prompt: "add a README" },
        member,
      );
      const assign = await runner.next<{
        type: "assign";
        job: { job_id: string; payload: { agent: string } };
      }>((m) => m.type === "assign");
      const { job_id: jobId, payload } = assign.job;
      runner.send({ type: "accept", job_id: jobId });
      const usage = (cost: number, tokens: number) => ({
        type: "agent.usage",
        agent: payload.agent,
        model: "claude-sonnet-4",
        input_tokens: tokens,
        output_tokens: tokens,
        cost_usd: cost,
      });
      runner.send({ type: "events", job_id: jobId, batch: 1, events: [usage(2, 10)] });
      await runner.next((m) => m.type === "ack" && m.batch === 1);
      const from = runner.received.length;
      runner.send({ type: "events", job_id: jobId, batch: 2, events: [usage(-1000, -1_000_000)] });
      await runner.next((m) => (m.type === "ack" && m.batch === 2) || m.type === "error", from);
      const report = await api<{ total: { usd: number; input_tokens: number } }>(
        server.url,
        "GET",
        "/api/usage",
        undefined,
        member,
      );
      expect(report.body.total.usd).toBe(2);
      expect(report.body.total.input_tokens).toBe(10);
      expect(body.run_id).toBeTruthy();
    } finally {
      runner.close();
    }
  }, 60_000);

  it("stores a replayed batch once and refuses batch numbers below 1", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep(server, "replays");
    try {
      runner.send({ type: "accept", job_id: jobId });
      const output = (data: string) => ({
        type: "step.output",
        stream: "stdout",
        data,
        step: payload.step,
        host: payload.host,
      });
      const from = runner.received.length;
      runner.send({ type: "events", job_id: jobId, batch: 0, events: [output("batch-zero\n")] });
      runner.send({ type: "events", job_id: jobId, batch: -1, events: [output("batch-negative\n")] });
      for (let i = 0; i < 3; i++)
        runner.send({ type: "events", job_id: jobId, batch: 1, events: [output("once\n")] });
      await runner.next(
        (m) => m.type === "ack" && runner.received.slice(from).filter((a) => a.type === "ack").length === 3,
        from,
      );
      const answers = runner.received.slice(from);
      expect(answers.filter((m) => m.type === "error" && m.code === "INVALID_INPUT")).toHaveLength(2);
      runner.send({ type: "finished", job_id: jobId, batches: 1, result: stepResult });
      await runner.next((m) => m.type === "done");
      await waitForRun(server.url, runId, isFinal);
      const data = (await readEvents(server.url, runId)).flatMap((e) =>
        e.type === "step.output" ? [e.data] : [],
      );
      expect(data).toEqual(["once\n"]);
    } finally {
      runner.close();
    }
  }, 60_000);

  it("cannot publish text of its own on the public /health/agents as agent labels", async () => {
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "labels", tenant_id: "labeller" }),
      "labeller",
      ["agent:claude_code", "agent:visit-evil.example-for-free-credits", `agent:${"x".repeat(190)}`],
    );
    try {
      const response = await fetch(`${server.url}/health/agents`);
      const health = (await response.json()) as { on_runners: string[] };
      expect(health.on_runners).toContain("claude_code");
      expect(health.on_runners.filter((name) => name.includes("evil") || name.startsWith("xxx"))).toEqual([]);
    } finally {
      runner.close();
    }
  });

  it("cannot report on another tenant's job, nor take it up, finish it or give it back", async () => {
    const acme = await token(server, { kind: "user", name: "acme", tenant_id: "acme" });
    const acmeRunner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "acme runner", tenant_id: "acme" }),
      "acme-holder",
    );
    const globexRunner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "globex runner", tenant_id: "globex" }),
      "globex-attacker",
    );
    try {
      const { body } = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "workflow", workflow: oneStep },
        acme,
      );
      const assign = await acmeRunner.next<AssignMessage>((m) => m.type === "assign");
      const { job_id: jobId, payload } = assign.job;
      const from = globexRunner.received.length;
      const output = {
        type: "step.output",
        stream: "stdout",
        data: "forged\n",
        step: payload.step,
        host: payload.host,
      };
      for (const message of [
        { type: "accept", job_id: jobId },
        { type: "events", job_id: jobId, batch: 1, events: [output] },
        {
          type: "finished",
          job_id: jobId,
          batches: 0,
          result: { ...stepResult, status: "failed", exit_code: 9 },
        },
        { type: "refuse", job_id: jobId, reason: "mine now" },
        { type: "abandoned", job_id: jobId, reason: "mine now" },
      ])
        globexRunner.send(message);
      const refused = () =>
        globexRunner.received.slice(from).filter((m) => m.type === "error" && m.code === "FORBIDDEN").length;
      await globexRunner.next((m) => m.type === "error" && refused() === 5, from);
      expect(globexRunner.received.slice(from).map((m) => m.type)).toEqual(Array(5).fill("error"));
      // The rightful runner finishes it: the forged output and result are nowhere.
      acmeRunner.send({ type: "accept", job_id: jobId });
      acmeRunner.send({ type: "finished", job_id: jobId, batches: 0, result: stepResult });
      await acmeRunner.next((m) => m.type === "done");
      const run = await waitForRun(server.url, body.run_id, isFinal);
      expect(run.status).toBe("success");
      const events = await readEvents(server.url, body.run_id);
      expect(events.some((e) => e.type === "step.output" && e.data.includes("forged"))).toBe(false);
    } finally {
      acmeRunner.close();
      globexRunner.close();
    }
  }, 60_000);
  it("cannot store a step's output before its step.started by sending it without taking the job up", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep(server, "no-accept");
    try {
      // No accept: the output comes first.
      const output = {
        type: "step.output",
        stream: "stdout",
        data: "early\n",
        step: payload.step,
        host: payload.host,
      };
      runner.send({ type: "events", job_id: jobId, batch: 1, events: [output] });
      await runner.next((m) => m.type === "ack" && m.batch === 1);
      runner.send({ type: "finished", job_id: jobId, batches: 1, result: stepResult });
      await runner.next((m) => m.type === "done");
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("success");
      const events = await readEvents(server.url, runId);
      const types = events.map((e) => (e.type === "step.output" ? `output ${e.data.trim()}` : e.type));
      const started = types.indexOf("step.started");
      expect(started, types.join(", ")).toBeGreaterThanOrEqual(0);
      expect(types.indexOf("output early"), types.join(", ")).toBeGreaterThan(started);
    } finally {
      runner.close();
    }
  }, 60_000);
  it("cannot store the step's start twice, after its output, or past the log cap by sending its first batch twice, untaken, as notices", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep(server, "first-twice");
    try {
      // No accept: the first batch is stored with the step's start it stands for, in one write.
      const message = "n".repeat(64 * 1024);
      const notices = Array.from({ length: 8 }, () => ({
        type: "notice",
        level: "warn",
        message,
        step: payload.step,
        host: payload.host,
      }));
      const from = runner.received.length;
      runner.send({ type: "events", job_id: jobId, batch: 1, events: notices });
      runner.send({ type: "events", job_id: jobId, batch: 1, events: notices });
      runner.send({ type: "events", job_id: jobId, batch: 2, events: notices });
      await runner.next(
        (m) => m.type === "ack" && runner.received.slice(from).filter((a) => a.type === "ack").length === 3,
        from,
      );
      runner.send({ type: "finished", job_id: jobId, batches: 2, result: stepResult });
      await runner.next((m) => m.type === "done");
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("success");
      const events = await readEvents(server.url, runId);
      const types = events.map((e) => e.type);
      expect(
        types.filter((type) => type === "run.started"),
        types.join(", "),
      ).toHaveLength(1);
      expect(
        types.filter((type) => type === "step.started"),
        types.join(", "),
      ).toHaveLength(1);
      const runnerNotices = events.filter((e) => e.type === "notice" && e.message === message);
      expect(runnerNotices.length).toBeGreaterThan(0);
      expect(types.indexOf("step.started")).toBeLessThan(events.indexOf(runnerNotices[0]!));
      expect(types.indexOf("run.started")).toBeLessThan(types.indexOf("step.started"));
      // 16 notices of 64 KiB sent once each (the resent batch not stored again): cut at the cap.
      expect(runnerNotices.length).toBeLessThanOrEqual(cap / (64 * 1024));
      expect(storedBytes(events)).toBeLessThanOrEqual(cap + 64 * 1024);
      expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    } finally {
      runner.close();
    }
  }, 60_000);
  it("cannot store the step's start after its output, or its only batch twice, by reporting the job once, finished, twice over", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep(server, "finished-twice");
    try {
      const output = {
        type: "step.output",
        stream: "stdout",
        data: "only\n",
        step: payload.step,
        host: payload.host,
      };
      // No accept, no events: its one report holds its first batch and its result, sent twice.
      const finished = { type: "finished", job_id: jobId, batches: 1, events: [output], result: stepResult };
      const from = runner.received.length;
      runner.send(finished);
      runner.send(finished);
      await runner.next(
        (m) => m.type === "done" && runner.received.slice(from).filter((d) => d.type === "done").length === 2,
        from,
      );
      const run = await waitForRun(server.url, runId, isFinal);
      expect(run.status).toBe("success");
      const types = (await readEvents(server.url, runId)).map((e) =>
        e.type === "step.output" ? `output ${e.data.trim()}` : e.type,
      );
      expect(
        types.filter((type) => type === "step.started"),
        types.join(", "),
      ).toHaveLength(1);
      expect(
        types.filter((type) => type === "output only"),
        types.join(", "),
      ).toHaveLength(1);
      expect(types.indexOf("run.started")).toBeLessThan(types.indexOf("step.started"));
      expect(types.indexOf("step.started")).toBeLessThan(types.indexOf("output only"));
      expect(types.indexOf("output only")).toBeLessThan(types.indexOf("step.finished"));
    } finally {
      runner.close();
    }
  }, 60_000);

  it("cannot hand a later step a variable under a name that is no variable's (BASH_FUNC_x%%, PATH=...)", async () => {
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "r" }),
      "bad-export-names",
    );
    try {
      const { body } = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "workflow",
        workflow: `${oneStep}  - name: after
    targets: [worker]
    action: cmd.run
    args:
      cmd: echo after
`,
      });
      const first = await runner.next<AssignMessage>((m) => m.type === "assign");
      runner.send({ type: "accept", job_id: first.job.job_id });
      // bash takes BASH_FUNC_echo%% as a function echo, and an environment entry "PATH=/tmp/x:=1" as PATH.
      const exports = { "BASH_FUNC_echo%%": "() { id; }", "PATH=/tmp/attacker:": "1", REPORT_ID: "44" };
      runner.send({
        type: "finished",
        job_id: first.job.job_id,
        batches: 0,
        result: { ...stepResult, exports },
      });
      await runner.next((m) => m.type === "done");
      // The second assign may come in the same read as the first step's done: look from that done on.
      const from = runner.received.findIndex((m) => m.type === "done") + 1;
      const second = await runner.next<AssignMessage>(
        (m) => m.type === "assign" && (m as unknown as AssignMessage).job.payload.step === "after",
        from,
      );
      expect(JSON.stringify(second)).toContain("REPORT_ID");
      expect(JSON.stringify(second)).not.toContain("BASH_FUNC");
      expect(JSON.stringify(second)).not.toContain("attacker");
      runner.send({ type: "accept", job_id: second.job.job_id });
      runner.send({ type: "finished", job_id: second.job.job_id, batches: 0, result: stepResult });
      await runner.next((m) => m.type === "done", from);
      const run = await waitForRun(server.url, body.run_id, isFinal);
      expect(run.vars).toEqual({ REPORT_ID: "44" });
      const notices = (await readEvents(server.url, body.run_id)).flatMap((e) =>
        e.type === "notice" ? [e.message] : [],
      );
      expect(notices).toContainEqual(
        expect.stringMatching(/^export "BASH_FUNC_echo%%" was refused: it is no variable name/),
      );
    } finally {
      runner.close();
    }
  }, 60_000);
});
