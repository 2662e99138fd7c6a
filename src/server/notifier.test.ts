import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { EventSequencer } from "../core/event-sequencer.js";
import type { EventInput, RunEvent } from "../core/events.js";
import { silentLogger } from "../core/logger.js";
import type { Store } from "../store/index.js";
import { openMemoryStore } from "../store/sqlite.js";
import { EventBus } from "./event-bus.js";
import { Notifier, type StateChange, signatureHeader, signBody, stateChangeOf } from "./notifier.js";

let store: Store;
let receiver: Server;
let url: string;
let received: Array<{ change: StateChange; signature: string | undefined }>;
let arrivals: Array<() => void>;

beforeEach(async () => {
  store = await openMemoryStore({ warn: () => undefined });
  received = [];
  arrivals = [];
  receiver = createServer((request: IncomingMessage, response) => {
    let body = "";
    request.on("data", (chunk: Buffer) => {
      body += chunk.toString("utf8");
    });
    request.on("end", () => {
      const signature = request.headers[signatureHeader];
      received.push({ change: JSON.parse(body) as StateChange, signature: signature as string | undefined });
      response.end("ok");
      for (const wake of arrivals.splice(0)) wake();
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

afterEach(async () => {
  await new Promise((resolve) => receiver.close(resolve));
  await store.close();
});

async function receivedCount(count: number): Promise<void> {
  while (received.length < count) await new Promise<void>((resolve) => arrivals.push(resolve));
}

function stamped(runId: string, ...inputs: EventInput[]): RunEvent[] {
  const sequencer = new EventSequencer(runId);
  return inputs.map((input) => sequencer.next(input));
}

describe("stateChangeOf", () => {
  it("makes a state change of run and step starts and ends, and none of output", () => {
    const [queued, output, finished] = stamped(
      "run-1",
      { type: "run.queued", kind: "workflow", name: "deploy" },
      { type: "step.output", step: "build", host: "a", stream: "stdout", data: "x\n" },
      {
        type: "step.finished",
        step: "build",
        host: "a",
        status: "failed",
        exit_code: 2,
        attempts: 1,
        duration_ms: 5,
        error: { code: "STEP_FAILED", message: "exit 2" },
      },
    );
    expect(queued && stateChangeOf(queued, "deploy")).toMatchObject({ status: "queued", version: 1 });
    expect(output && stateChangeOf(output, "deploy")).toBeUndefined();
    expect(finished && stateChangeOf(finished, "deploy")).toMatchObject({
      run_id: "run-1",
      workflow_name: "deploy",
      status: "failed",
      step: "build",
      host: "a",
      error: "exit 2",
      version: 3,
    });
  });
});

describe("Notifier.follow", () => {
  it("posts each state change of a run from the bus, signed, and stops after run.finished", async () => {
    const bus = new EventBus();
    const notifier = new Notifier(bus, store.runs, silentLogger);
    const run = await store.runs.create({ kind: "workflow", name: "deploy" });
    notifier.follow(run.id, "deploy", [{ url, secret: "s3cret", retry: 0, delayMs: 0 }], true);
    const events = stamped(
      run.id,
      { type: "run.started", name: "deploy" },
      { type: "run.finished", status: "success" },
      { type: "run.started", name: "deploy" },
    );
    bus.publish(events);
    await receivedCount(2);
    expect(received.map((r) => r.change.status)).toEqual(["running", "success"]);
    expect(received[0]?.signature).toBe(signBody("s3cret", JSON.stringify(received[0]?.change)));
    expect(bus.followers).toBe(0);
  });

  it("stores a webhook that keeps failing as the run's last_notify_error", async () => {
    const bus = new EventBus();
    const notifier = new Notifier(bus, store.runs, silentLogger, { timeoutMs: 1000 });
    const run = await store.runs.create({ kind: "workflow", name: "deploy" });
    await new Promise((resolve) => receiver.close(resolve));
    const stored = new Promise<void>((resolve) => {
      const check = async (): Promise<void> => {
        if ((await store.runs.get(run.id))?.last_notify_error) resolve();
        else setImmediate(() => void check());
      };
      void check();
    });
    notifier.follow(run.id, "deploy", [{ url, retry: 0, delayMs: 0 }], true);
    bus.publish(stamped(run.id, { type: "run.started", name: "deploy" }));
    await stored;
    expect((await store.runs.get(run.id))?.last_notify_error).toMatch(/^notify failed after 1 attempt: /);
    receiver = createServer();
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  });
});
