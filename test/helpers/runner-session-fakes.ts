import { EventEmitter } from "node:events";
import { silentLogger } from "../../src/core/logger.js";
import type { JobQueue } from "../../src/server/job-queue.js";
import { RunEnds } from "../../src/server/run-ends.js";
import { RunnerSession, type SessionHost } from "../../src/server/runner-session.js";
import type { TokenRecord } from "../../src/store/index.js";

/** A socket as `ws` gives it to a RunnerSession: messages in, `send` out. */
export class FakeSocket extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  readonly sent: Array<{ type: string; [field: string]: unknown }> = [];
  send(data: string): void {
    this.sent.push(JSON.parse(data) as { type: string });
  }
  close(): void {
    this.readyState = 3;
  }
  receive(message: object): void {
    this.emit("message", Buffer.from(JSON.stringify(message)));
  }
}

/** A runner token of no tenant, as a session checks it at hello. */
export const fakeToken = { id: "tok_1", tenant_id: null, group: null } as unknown as TokenRecord;

/**
 * The hub a RunnerSession talks to, over `queue`: its token found and its runner stored at hello,
 * each session live; `more` replaces any of it.
 */
export function fakeSessionHost(
  queue: JobQueue,
  more: Partial<SessionHost> = {},
  token = fakeToken,
): SessionHost {
  return {
    store: {
      tokens: { get: async () => token },
      runners: { upsert: async (runner: object) => runner, touch: async () => undefined },
    } as unknown as SessionHost["store"],
    queue,
    logger: silentLogger,
    replicaId: "replica-1",
    installId: "install-1",
    heartbeatMs: 300,
    register: () => {},
    unregister: () => {},
    isLive: () => true,
    dispatch: () => {},
    queueChanges: 0,
    ...more,
  };
}

/** Runs as a fake store has them, by id: their status and tenant. */
export type FakeRunStates = Record<string, { status: string; tenant_id: string | null }>;

/**
 * A session of a runner of `tenant` on a hub whose RunEnds (src/server/run-ends.ts) reads
 * `states`, each run's last event `run.finished` unless it is running; `claimFor` hands it jobs.
 * `told()` lists the runs a `run_ended` named, in the order sent.
 */
export function sessionWithRunEnds(
  tenant: string,
  states: FakeRunStates,
  claimFor: JobQueue["claimFor"] = async () => undefined,
) {
  const token = { id: "tok_1", tenant_id: tenant, group: null } as unknown as TokenRecord;
  const queue = {
    leaseMs: 2000,
    inventory: async () => ({ resumed: new Map(), drop: [], cancel: [] }),
    claimFor,
  } as unknown as JobQueue;
  const sessions: RunnerSession[] = [];
  const store = {
    runs: { state: async (id: string) => (states[id] ? { id, last_seq: 1, ...states[id] } : undefined) },
    events: {
      list: async (runId: string) => [
        { type: states[runId]?.status === "running" ? "step.output" : "run.finished" },
      ],
    },
  };
  const ends = new RunEnds(store as never, () => sessions, silentLogger);
  const host = fakeSessionHost(
    queue,
    {
      register: (session) => void sessions.push(session),
      checkRuns: (session, runIds) => ends.check([session], runIds),
    },
    token,
  );
  const socket = new FakeSocket();
  const session = new RunnerSession(socket as never, token, host);
  const told = () =>
    socket.sent.filter((message) => message.type === "run_ended").map((message) => String(message.run_id));
  return { socket, session, ends, told };
}
