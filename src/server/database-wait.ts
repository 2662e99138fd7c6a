import { createServer, type Server } from "node:http";
import { errorTable, RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { connectionLost } from "../store/connection-loss.js";
import type { Store } from "../store/index.js";
import { storeRetryAfterSeconds } from "./error-responses.js";

/** How long a replica waits for its database at start unless RUNYARD_DATABASE_WAIT says otherwise. */
export const defaultDatabaseWaitSeconds = 300;
/** How often the wait is logged. */
const logEveryMs = 5000;
const firstRetryMs = 250;
const maxRetryMs = 5000;

export interface DatabaseWait {
  /** Give up after this long (then the last STORE_UNREACHABLE ends the start); 0: do not wait. */
  waitMs: number;
  host: string;
  port: number;
  replicaId: string;
  version: string;
  logger: Logger;
}

/** What a waiting replica answers: it is alive, not ready, and the API is unavailable. */
function answering(wait: DatabaseWait): Server {
  const server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    const json = (status: number, body: unknown, headers: Record<string, string> = {}): void => {
      response.writeHead(status, { "content-type": "application/json; charset=utf-8", ...headers });
      response.end(JSON.stringify(body));
    };
    if (path === "/health") {
      json(200, {
        ok: true,
        version: wait.version,
        replica: wait.replicaId,
        leader: false,
        database: "unreachable",
      });
      return;
    }
    if (path === "/health/ready") {
      json(503, { ok: false, database: "unreachable", waiting_for: "the database" });
      return;
    }
    json(
      503,
      {
        error: {
          code: "STORE_UNAVAILABLE",
          // Why not (the database's address, user, name) is for the log: this answers anyone.
          message: "this server is starting and waits for its database",
          hint: errorTable.STORE_UNAVAILABLE.hint,
        },
      },
      { "retry-after": String(storeRetryAfterSeconds) },
    );
  });
  // A runner's socket: the same 503, so that it comes back after Retry-After.
  server.on("upgrade", (_request, socket) => {
    socket.end(
      `HTTP/1.1 503 Service Unavailable\r\nRetry-After: ${storeRetryAfterSeconds}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`,
    );
  });
  return server;
}

/** The database could not be reached, or went away while the store opened: worth waiting for. */
function worthWaiting(error: unknown): boolean {
  if (!(error instanceof RunyardError)) return connectionLost(error);
  if (error.code === "STORE_UNAVAILABLE") return true;
  return error.code === "STORE_UNREACHABLE" && connectionLost(error.cause);
}

/**
 * Opens the store, waiting for a database down or recovering: meanwhile the replica listens (`/health`
 * alive, `/health/ready` and the API 503 with Retry-After), retrying with back-off; after `waitMs` the
 * last error ends the start. Resolves with the store and `listening`, closed before the server listens.
 */
export async function openWhenReachable(
  open: () => Promise<Store>,
  wait: DatabaseWait,
): Promise<{ store: Store; listening: Server | undefined }> {
  const started = Date.now();
  let listening: Server | undefined;
  let lastReason = "";
  let loggedAt = 0;
  let retryMs = firstRetryMs;
  for (;;) {
    try {
      return { store: await open(), listening };
    } catch (error) {
      const waited = Date.now() - started;
      if (!worthWaiting(error) || waited >= wait.waitMs) {
        await close(listening);
        throw error;
      }
      lastReason = error instanceof Error ? error.message : String(error);
      // Unreferenced: should the start fail after the store opens, this does not keep the process.
      if (!listening) listening = (await listen(answering(wait), wait)).unref();
      if (Date.now() - loggedAt >= logEveryMs) {
        loggedAt = Date.now();
        wait.logger.warn(
          {
            err: lastReason,
            waitedSeconds: Math.round(waited / 1000),
            givesUpInSeconds: Math.round((wait.waitMs - waited) / 1000),
          },
          "waiting for the database (RUNYARD_DATABASE_WAIT); /health/ready answers 503 meanwhile",
        );
      }
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryMs, wait.waitMs - waited)));
      retryMs = Math.min(retryMs * 2, maxRetryMs);
    }
  }
}

function listen(server: Server, wait: DatabaseWait): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(wait.port, wait.host, () => {
      server.off("error", reject);
      resolve(server);
    });
  });
}

/** Stops the waiting answers, at once: open connections are closed too. */
export function close(server: Server | undefined): Promise<void> {
  if (!server) return Promise.resolve();
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
