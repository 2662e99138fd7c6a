import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import type { RunEvent } from "../src/core/events.js";
import { runnerSocketPath, type ServerMessage } from "../src/core/protocol.js";
import { tempDir } from "./helpers/cli.js";
import { describeHealthTries, healthLimit, healthWhileTries } from "./helpers/health-latency.js";
import { api, isFinal, readEvents, startTestServer, type TestServer, waitForRun } from "./helpers/server.js";

/*
 * A runner that speaks the runner protocol itself, as one started with a tenant's own runner
 * token could: it takes its job and then reports whatever it likes. What it may not do is write
 * past what the server allows, or into anything but the job it holds.
 */

const oneStep = `version: v0.1
name: attacked
inventory:
  hosts:
    worker: {}
steps:
  - name: hello
    targets: [worker]
    action: cmd.run
    args:
      cmd: echo hello
`;

interface AssignMessage {
  type: "assign";
  job: { job_id: string; kind: string; payload: { run_id: string; step: string; host: string } };
}

/** A hand-made runner on the socket: it says hello and keeps every message the server sends. */
class ProtocolRunner {
  readonly received: ServerMessage[] = [];
  private readonly waiters: Array<() => void> = [];

  private constructor(readonly socket: WebSocket) {
    socket.on("message", (data) => {
      this.received.push(JSON.parse(String(data)) as ServerMessage);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async connect(
    server: TestServer,
    token: string,
    id: string,
    labels: string[] = [],
  ): Promise<ProtocolRunner> {
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: { authorization: `Bearer ${token}` },
      // An all-zero mask is not applied: a large message then costs this process (which also
      // measures /health) nothing to send.
      generateMask: (mask) => mask.fill(0),
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    const runner = new ProtocolRunner(socket);
    runner.send({ type: "hello", jobs: [], runner: { id, hostname: "attacker", capacity: 1, labels } });
    await runner.next((m) => m.type === "welcome");
    return runner;
  }

  send(message: unknown): void {
    this.socket.send(JSON.stringify(message));
  }

  /** The first message (from `from` on) that matches, waiting up to 15 s for it. */
  async next<T = ServerMessage>(match: (m: ServerMessage) => boolean, from = 0): Promise<T> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const found = this.received.slice(from).find(match);
      if (found) return found as unknown as T;
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no matching message; got ${JSON.stringify(this.received)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): void {
    this.socket.terminate();
  }

  /** Sends `text` as one message; resolves with the socket's close, or the server's first error after it. */
  sendAndSee(
    text: string | Buffer,
  ): Promise<{ closed?: { code: number; reason: string }; error?: ServerMessage }> {
    const from = this.received.length;
    const closed = new Promise<{ closed: { code: number; reason: string } }>((resolve) =>
      this.socket.once("close", (code, reason) => resolve({ closed: { code, reason: String(reason) } })),
    );
    const error = this.next((m) => m.type === "error", from).then((m) => ({ error: m }));
    this.socket.send(text);
    return Promise.race([closed, error]);
  }
}

const stepResult = {
  kind: "step",
  status: "success",
  exit_code: 0,
  exports: {},
  duration_ms: 1,
  memory_peak_bytes: 0,
  cpu_ms: 0,
};

async function token(server: TestServer, body: Record<string, unknown>): Promise<string> {
  const { status, body: created } = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  if (status !== 201) throw new Error(`token: ${status} ${JSON.stringify(created)}`);
  return created.token;
}

function storedBytes(events: RunEvent[]): number {
  let bytes = 0;
  for (const event of events) {
    if (event.type === "step.output") bytes += Buffer.byteLength(event.data, "utf8");
    if (event.type === "notice") bytes += Buffer.byteLength(event.message, "utf8");
  }
  return bytes;
}

describe("a runner speaking the protocol itself", () => {
  const cap = 256 * 1024;
  let server: TestServer;

  beforeAll(async () => {
    server = await startTestServer(tempDir(), { RUNYARD_MAX_RUN_LOG_BYTES: String(cap) });
  }, 60_000);

  afterAll(async () => {
    await server?.proc.kill();
  });

  /** A runner of its own, connected as `name`, handed the job of a one-step run submitted for it. */
  async function assignedOneStep(name: string) {
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "r" }),
      name,
    );
    try {
      const { body } = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
        kind: "workflow",
        workflow: oneStep,
      });
      const assign = await runner.next<AssignMessage>((m) => m.type === "assign");
      return { runner, runId: body.run_id, jobId: assign.job.job_id, payload: assign.job.payload };
    } catch (error) {
      runner.close();
      throw error;
    }
  }

  it("cannot store more than the run's log cap by reporting notices instead of output", async () => {
    const { runner, runId, jobId, payload } = await assignedOneStep("notices");
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
    const { runner, runId, jobId, payload } = await assignedOneStep("replays");
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

  it("cuts off a tenant's runner that sends a message past an event batch's size, saying why, and answers others meanwhile", async () => {
    const attackerToken = await token(server, { kind: "runner", name: "huge", tenant_id: "initech" });
    // 120,000 one-character outputs, 9 MB: under the 64 MiB a runner's message could hold, it
    // was read and checked on the event loop, holding every request for seconds.
    const output = { type: "step.output", stream: "stdout", data: "x", step: "s", host: "h" };
    const text = Buffer.from(
      JSON.stringify({ type: "events", job_id: "none", batch: 1, events: Array(120_000).fill(output) }),
    );
    const attackers: ProtocolRunner[] = [];
    const connect = async () => {
      const attacker = await ProtocolRunner.connect(server, attackerToken, `huge-sender-${attackers.length}`);
      attackers.push(attacker);
      return attacker;
    };
    // The baseline is a runner that connects and sends a small message the server refuses: what a
    // connection costs the event loop on this machine at that moment, which the large message must
    // not add much to.
    const tries = await healthWhileTries(
      server.url,
      async () => {
        // WebSocket's "message too big": the runner logs that the server takes at most 4 MiB.
        expect(await (await connect()).sendAndSee(text)).toEqual({ closed: { code: 1009, reason: "" } });
      },
      async () => {
        const small = JSON.stringify({ type: "events", job_id: "none", batch: 1, events: [output] });
        const sender = await connect();
        expect(await sender.sendAndSee(small)).toHaveProperty("error");
        // Gone as the large message's sender is: the job below is the normal runner's to take.
        sender.close();
      },
    );
    const last = tries.at(-1)!;
    // Refused from its header (the 1009 above), the message's 9 MB still arrive and are thrown
    // away: 8 to 14 ms of /health here against 2 for the baseline, and 167 to 253 ms under CI's
    // full suite on a slow host. What this guards is the seconds a message read and checked on
    // the event loop held every request for: a second at least, whatever the machine.
    expect(last.during, describeHealthTries(tries, "the message")).toBeLessThan(
      Math.max(1000, healthLimit(last)),
    );
    // A runner that sends what a runner sends goes on: it takes a job and finishes it.
    const runner = await ProtocolRunner.connect(
      server,
      await token(server, { kind: "runner", name: "normal", tenant_id: "initech" }),
      "normal-sender",
    );
    try {
      const member = await token(server, { kind: "user", name: "initech member", tenant_id: "initech" });
      const { body } = await api<{ run_id: string }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "workflow", workflow: oneStep },
        member,
      );
      const assign = await runner.next<AssignMessage>((m) => m.type === "assign");
      const { job_id: jobId, payload } = assign.job;
      runner.send({ type: "accept", job_id: jobId });
      // A batch past 64 KiB is read off the event loop, and still before the result that follows it.
      const data = "y".repeat(90 * 1024);
      const line = { type: "step.output", stream: "stdout", data, step: payload.step, host: payload.host };
      runner.send({ type: "events", job_id: jobId, batch: 1, events: [line] });
      runner.send({ type: "finished", job_id: jobId, batches: 1, result: stepResult });
      await runner.next((m) => m.type === "done");
      const run = await waitForRun(server.url, body.run_id, isFinal);
      expect(run.status).toBe("success");
      const stored = (await readEvents(server.url, body.run_id)).flatMap((e) =>
        e.type === "step.output" ? [e.data] : [],
      );
      expect(stored.join("")).toBe(data);
    } finally {
      runner.close();
      for (const attacker of attackers) attacker.close();
    }
  }, 60_000);

  // 60,000 empty events are 180 KB, read where they arrive; 400,000 are 1.2 MB, read on the JSON thread.
  it.each([60_000, 400_000])(
    "cuts off a tenant's runner whose message holds more than 50,000 JSON values (%i), saying why",
    async (count) => {
      const attacker = await ProtocolRunner.connect(
        server,
        await token(server, { kind: "runner", name: `many-${count}`, tenant_id: "initech" }),
        `many-values-${count}`,
      );
      try {
        const text = JSON.stringify({
          type: "events",
          job_id: "none",
          batch: 1,
          events: Array(count).fill([]),
        });
        expect(await attacker.sendAndSee(text)).toEqual({
          closed: { code: 1008, reason: "a runner's message may hold at most 50000 JSON values" },
        });
      } finally {
        attacker.close();
      }
    },
  );

  it("refuses a runner token in the query string: the socket takes it as a header only", async () => {
    const secret = await token(server, { kind: "runner", name: "in the url" });
    const socket = new WebSocket(
      `${server.url.replace(/^http/, "ws")}${runnerSocketPath}?access_token=${secret}`,
    );
    const status = await new Promise<number | "upgraded">((resolve, reject) => {
      socket.on("error", () => undefined);
      socket.on("open", () => resolve("upgraded"));
      socket.on("unexpected-response", (_request, response) => resolve(response.statusCode ?? 0));
      setTimeout(() => reject(new Error("no answer within 10 s")), 10_000).unref();
    });
    socket.terminate();
    expect(status).toBe(401);
  });

  it("refuses a hello whose hostname and labels are past their caps, naming them, and lists no such runner", async () => {
    const secret = await token(server, { kind: "runner", name: "long hello", tenant_id: "longhello" });
    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}${runnerSocketPath}`, {
      headers: { authorization: `Bearer ${secret}` },
    });
    await new Promise<void>((resolve, reject) => {
      socket.once("open", () => resolve());
      socket.once("error", reject);
    });
    const answers: ServerMessage[] = [];
    // Closed with its code, or welcomed (-1): either ends the wait.
    const closed = new Promise<number>((resolve) => {
      socket.once("close", (code) => resolve(code));
      socket.on("message", (data) => {
        answers.push(JSON.parse(String(data)) as ServerMessage);
        if (answers.at(-1)?.type === "welcome") resolve(-1);
      });
    });
    socket.send(
      JSON.stringify({
        type: "hello",
        jobs: [],
        runner: {
          id: "long-hello",
          hostname: "h".repeat(600 * 1024),
          labels: Array.from({ length: 5000 }, (_, i) => `label-${i}-${"l".repeat(150)}`),
          capacity: 1,
        },
      }),
    );
    expect(await closed).toBe(4003);
    const error = answers.find((m) => m.type === "error");
    const text = JSON.stringify(error);
    expect(text).toContain("INVALID_INPUT");
    expect(text).toContain("hostname");
    expect(text).toContain("at most 255");
    expect(text).toContain("labels");
    expect(text.length).toBeLessThan(4096);
    expect(answers.some((m) => m.type === "welcome")).toBe(false);
    const member = await token(server, { kind: "user", name: "long hello member", tenant_id: "longhello" });
    const listed = await api<Array<{ id: string }>>(server.url, "GET", "/api/runners", undefined, member);
    expect(listed.body.map((runner) => runner.id)).not.toContain("long-hello");
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
    const { runner, runId, jobId, payload } = await assignedOneStep("no-accept");
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
    const { runner, runId, jobId, payload } = await assignedOneStep("first-twice");
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
    const { runner, runId, jobId, payload } = await assignedOneStep("finished-twice");
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
