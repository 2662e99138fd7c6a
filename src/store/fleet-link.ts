/**
 * How server replicas on one database reach each other: short messages to every replica, and
 * one leader at a time. On PostgreSQL that is `LISTEN/NOTIFY` and a session advisory lock
 * (`postgres-link.ts`); on SQLite there is one server, so it is in-process (`localLink`).
 * A message may be lost (a dropped connection): every receiver also sweeps the store now and
 * then, so a lost message costs latency, never data.
 */
export type FleetMessage =
  /** Events of a run are stored up to `seq`: followers elsewhere read them from the store. */
  | { type: "events"; run_id: string; seq: number }
  /** The row of a job changed (taken up, done, lost): the engine waiting for it reads it. */
  | { type: "job"; run_id: string; job_id: string }
  /** A job was queued: replicas with idle runners offer it. */
  | { type: "jobs" }
  /** Stop a job on the runner holding it, wherever that runner is connected. */
  | { type: "cancel-job"; job_id: string; runner_id: string }
  /** Cancel a run; the replica carrying it stops it. */
  | { type: "cancel-run"; run_id: string }
  /** An approval step's answer is stored: the engine waiting for it reads it. */
  | { type: "approval"; run_id: string; step: string }
  /** A credential was revoked: every replica ends what it holds open with it. */
  | ({ type: "revoked" } & RevokedCredential);

/** A revoked token (by id), a removed user or one whose password changed, a logged-out session. */
export interface RevokedCredential {
  credential: "token" | "user" | "session";
  id: string;
}

/** A message and the replica that sent it. */
export type FleetEnvelope = FleetMessage & { from: string };

export interface FleetLink {
  /** Sends to every replica, this one included; never throws (a failed send is a lost message). */
  notify(message: FleetEnvelope): void;
  /** Receives every message; returns the unsubscribe. */
  onMessage(handler: (message: FleetEnvelope) => void): () => void;
  /** Tries to become the fleet's leader, or checks it still is; true while it is. */
  lead(): Promise<boolean>;
  /** Who holds the lead (a replica id and the session holding it), when another does. */
  leader?(): Promise<{ replica: string; session: number } | undefined>;
  /** Ends a leader's session that outlived its replica, so that another can lead. */
  depose?(session: number): Promise<void>;
  close(): Promise<void>;
}

/** The link of a single server (SQLite, memory): messages stay in the process; it always leads. */
export function localLink(): FleetLink {
  const handlers = new Set<(message: FleetEnvelope) => void>();
  return {
    notify(message) {
      queueMicrotask(() => {
        for (const handler of handlers) handler(message);
      });
    },
    onMessage(handler) {
      handlers.add(handler);
      return () => handlers.delete(handler);
    },
    lead: async () => true,
    close: async () => handlers.clear(),
  };
}
