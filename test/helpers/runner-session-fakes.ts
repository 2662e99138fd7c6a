import { EventEmitter } from "node:events";
import { silentLogger } from "../../src/core/logger.js";
import type { JobQueue } from "../../src/server/job-queue.js";
import type { SessionHost } from "../../src/server/runner-session.js";
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
    ...more,
  };
}
