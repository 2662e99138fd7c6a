/**
 * A hand-made runner for the protocol attack tests: it speaks the runner protocol itself, as one
 * started with a tenant's own runner token could, and keeps every message the server sends.
 */
import WebSocket from "ws";
import type { RunEvent } from "../../src/core/events.js";
import { runnerSocketPath, type ServerMessage } from "../../src/core/protocol.js";
import { api, type TestServer } from "./server.js";

export const oneStep = `version: v0.1
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

export interface AssignMessage {
  type: "assign";
  job: { job_id: string; kind: string; payload: { run_id: string; step: string; host: string } };
}

/** A hand-made runner on the socket: it says hello and keeps every message the server sends. */
export class ProtocolRunner {
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

export const stepResult = {
  kind: "step",
  status: "success",
  exit_code: 0,
  exports: {},
  duration_ms: 1,
  memory_peak_bytes: 0,
  cpu_ms: 0,
};

export async function token(server: TestServer, body: Record<string, unknown>): Promise<string> {
  const { status, body: created } = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  if (status !== 201) throw new Error(`token: ${status} ${JSON.stringify(created)}`);
  return created.token;
}

export function storedBytes(events: RunEvent[]): number {
  let bytes = 0;
  for (const event of events) {
    if (event.type === "step.output") bytes += Buffer.byteLength(event.data, "utf8");
    if (event.type === "notice") bytes += Buffer.byteLength(event.message, "utf8");
  }
  return bytes;
}

/** A runner of its own, connected as `name`, handed the job of a one-step run submitted for it. */
export async function assignedOneStep(server: TestServer, name: string) {
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
