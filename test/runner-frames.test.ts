import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket, { WebSocketServer } from "ws";
import { tempDir } from "./helpers/cli.js";
import {
  isFinal,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { stepGate } from "./helpers/step-gate.js";

/**
 * A relay between a runner and its server on the wire (the `ws` library on both sides), which
 * notes every message the runner sends, and may take a field out of the server's welcome (as an
 * older server's would be). It holds the server's acks of a job until the runner has sent that
 * job's `finished`: a busy server, made exact, so that what a step prints after its first batch
 * waits in the runner until the job ends.
 */
async function relay(serverUrl: string, onMessage: (type: string) => void, welcomeWithout?: string) {
  const sent: Array<{ type: string; job_id?: string; events?: unknown[] }> = [];
  const wss = new WebSocketServer({ port: 0, host: "127.0.0.1" });
  wss.on("connection", (runner, request) => {
    const server = new WebSocket(new URL(request.url ?? "/", serverUrl.replace(/^http/, "ws")), {
      headers: { authorization: request.headers.authorization ?? "" },
    });
    const early: string[] = [];
    const heldAcks: string[] = [];
    const ended = new Set<string>();
    server.on("open", () => {
      for (const message of early.splice(0)) server.send(message);
    });
    runner.on("message", (data) => {
      const text = String(data);
      const message = JSON.parse(text);
      sent.push(message);
      if (message.job_id !== undefined) onMessage(message.type);
      if (message.type === "finished") {
        ended.add(message.job_id);
        for (const ack of heldAcks.splice(0)) runner.send(ack);
      }
      if (server.readyState === WebSocket.OPEN) server.send(text);
      else early.push(text);
    });
    server.on("message", (data) => {
      const message = JSON.parse(String(data));
      if (message.type === "welcome" && welcomeWithout) delete message[welcomeWithout];
      if (message.type === "ack" && !ended.has(message.job_id)) heldAcks.push(JSON.stringify(message));
      else runner.send(JSON.stringify(message));
    });
    runner.on("close", () => server.close());
    server.on("close", () => runner.close());
    server.on("error", () => runner.terminate());
  });
  await new Promise((resolve) => wss.once("listening", resolve));
  const { port } = wss.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    sent,
    close: () => new Promise((resolve) => wss.close(resolve)),
  };
}

const workflow = (label: string, script: string) =>
  [
    "name: frames",
    "inventory:",
    "  hosts:",
    `    worker: {labels: [${label}]}`,
    "steps:",
    "  - name: one",
    "    targets: [worker]",
    "    action: shell.run",
    "    args:",
    "      shell: bash",
    `      script: ${script}`,
    "",
  ].join("\n");

/** Prints, waits at the gate (opened once its first batch is on the wire), prints again. */
const chatty = (port: number) => `echo first; read -r _ < /dev/tcp/127.0.0.1/${port}; echo last`;

describe("a job's messages to its server", () => {
  let server: TestServer;
  const closers: Array<() => Promise<unknown>> = [];

  beforeAll(async () => {
    server = await startTestServer(tempDir());
  });

  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await server?.proc.kill();
  });

  async function runThrough(
    label: string,
    options: {
      script?: (port: number) => string;
      /** The relay's message of the job that opens the step's gate. */
      openOn?: string;
      welcomeWithout?: string;
      env?: Record<string, string>;
    } = {},
  ) {
    const { script = chatty, openOn = "events", welcomeWithout, env } = options;
    const step = await stepGate();
    closers.push(step.close);
    const wire = await relay(server.url, (type) => type === openOn && step.open(), welcomeWithout);
    closers.push(wire.close);
    const runner = await startRunner(wire.url, await runnerToken(server.url), {
      id: `${label}-runner`,
      labels: label,
      ...(env ? { env } : {}),
    });
    closers.push(() => runner.kill());
    const runId = await submit(server.url, workflow(label, script(step.port)));
    const run = await waitForRun(server.url, runId, isFinal, 60_000);
    expect(run.status).toBe("success");
    const output = (await readEvents(server.url, runId))
      .filter((event) => event.type === "step.output")
      .map((event) => String((event as { data?: unknown }).data))
      .join("");
    const jobMessages = wire.sent.filter((message) => message.job_id !== undefined);
    const types = (await readEvents(server.url, runId)).map((event) => event.type);
    return { output, jobMessages, types };
  }

  /** The job's messages as `type(events)`: "accept, events(1), finished(1)". */
  const shown = (messages: Array<{ type: string; events?: unknown[] }>) =>
    messages
      .map((message) => `${message.type}${message.events ? `(${message.events.length})` : ""}`)
      .join(", ");

  // Held past any host's speed, so the first report surely comes within it (the default, 50 ms, below).
  const longGrace = { RUNYARD_ACCEPT_GRACE_MS: "10000" };

  it("a job's first output stands for its accept, and its last batch goes inside `finished`", async () => {
    const { output, jobMessages, types } = await runThrough("frames-new", { env: longGrace });
    expect(output).toBe("first\nlast\n");
    console.log(`a job whose last output waited for its end: ${shown(jobMessages)}`);
    // "first" went at once and said the job was taken; "last", printed once "first" was on the
    // wire, waited behind it (its ack held) and went with the result.
    expect(shown(jobMessages)).toBe("events(1), finished(1)");
    expect(types.indexOf("step.started")).toBeLessThan(types.indexOf("step.output"));
  }, 90_000);

  it("a step that ends without output sends its result alone, which stands for its accept", async () => {
    const { output, jobMessages, types } = await runThrough("frames-silent", {
      script: () => "exit 0",
      env: longGrace,
    });
    expect(output).toBe("");
    expect(shown(jobMessages)).toBe("finished");
    expect(types.filter((type) => type.startsWith("step."))).toEqual(["step.started", "step.finished"]);
    // A run's start comes before its first step's, even when the result was the first word of it.
    expect(types.indexOf("run.started")).toBeGreaterThanOrEqual(0);
    expect(types.indexOf("run.started")).toBeLessThan(types.indexOf("step.started"));
  }, 90_000);

  it("a step silent past the grace is said taken on its own, before its output", async () => {
    // The gate opens only once the accept is on the wire: the step cannot print before it.
    const { output, jobMessages } = await runThrough("frames-slow", {
      script: (port) => `read -r _ < /dev/tcp/127.0.0.1/${port}; echo first`,
      openOn: "accept",
      env: { RUNYARD_ACCEPT_GRACE_MS: "200" },
    });
    expect(output).toBe("first\n");
    expect(shown(jobMessages)).toBe("accept, events(1), finished");
  }, 90_000);

  it("with the runner's defaults, every line is stored once and the accept rides with the first output where it came in time", async () => {
    const { output, jobMessages } = await runThrough("frames-default");
    expect(output).toBe("first\nlast\n");
    // Whether the first output came within the default grace depends on the host's speed.
    expect(shown(jobMessages)).toMatch(/^(accept, )?events\(1\), finished\(1\)$/);
  }, 90_000);

  it("goes apart to a server whose welcome does not say it takes them compact: accept first, the last batch alone", async () => {
    const { output, jobMessages } = await runThrough("frames-old", {
      welcomeWithout: "compact_job_reports",
      env: longGrace,
    });
    expect(output).toBe("first\nlast\n");
    expect(shown(jobMessages)).toBe("accept, events(1), events(1), finished");
  }, 90_000);
});
