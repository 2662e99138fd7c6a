import { RunyardError } from "../core/errors.js";

/**
 * SQLSTATEs by which PostgreSQL says a statement was refused because the server is going away
 * or cannot serve it now: admin or crash shutdown (57P01, 57P02), not accepting connections yet
 * (57P03), too many connections (53300), and a primary just demoted to a read-only standby
 * (25006). The statement was not applied. Class 08 is a connection exception.
 */
const refusingStates = new Set(["57P01", "57P02", "57P03", "53300", "25006"]);

/** Socket errors by which the connection (or the attempt to make one) ended. */
const socketCodes = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** node-postgres's own words for a connection that ended or never came. */
const lostMessages = [
  "Connection terminated",
  "not queryable",
  "timeout exceeded when trying to connect",
  "Connection terminated due to connection timeout",
];

/** A driver error's `code` (a SQLSTATE, a socket error, SQLite's), if it has one. */
export function codeOf(error: unknown): string | undefined {
  if (typeof error !== "object" || error === null || !("code" in error)) return undefined;
  return typeof error.code === "string" ? error.code : undefined;
}

/** The server answered the statement with a refusal of the whole connection: it was not applied. */
export function refusedByServer(error: unknown): boolean {
  const code = codeOf(error);
  return code !== undefined && (refusingStates.has(code) || /^08[0-9A-Z]{3}$/.test(code));
}

/** The database went away under the statement, or could not be reached for it. */
export function connectionLost(error: unknown): boolean {
  if (refusedByServer(error)) return true;
  const code = codeOf(error);
  if (code !== undefined && socketCodes.has(code)) return true;
  const message = error instanceof Error ? error.message : "";
  return lostMessages.some((words) => message.includes(words));
}

/** Errors for which the caller may run its whole transaction again: it did not commit. */
const notCommitted = new WeakSet<object>();

/**
 * The store's answer while its database cannot be reached. `committed: false` when the statement
 * (or its transaction) certainly did not take effect, so running it again is safe.
 */
export function storeUnavailable(cause: unknown, committed: boolean | "unknown"): RunyardError {
  // The driver's reason (`connect ECONNREFUSED 10.0.3.7:5432`) names the database's address:
  // it stays in the cause, for the server's log, and out of the answer a member reads.
  const error = new RunyardError(
    "STORE_UNAVAILABLE",
    `the database cannot be reached right now${committed === "unknown" ? "; whether the change was stored is not known" : ""}`,
    { cause },
  );
  if (committed === false) notCommitted.add(error);
  return error;
}

/** The transaction failed because its connection was lost before it committed. */
export function safeToRunAgain(error: unknown): boolean {
  return typeof error === "object" && error !== null && notCommitted.has(error);
}

/** When this process last found its database unreachable; what the fleet's clocks discount. */
export interface StoreOutages {
  /** The time (ms since the epoch) a statement last failed because the database could not be reached. */
  lastLost(): number | undefined;
}

/** The outage clock of one store: its connections call `lost()`. */
export class OutageClock implements StoreOutages {
  private last: number | undefined;

  lost(): void {
    this.last = Date.now();
  }

  lastLost(): number | undefined {
    return this.last;
  }
}

/** A store that never loses its database (SQLite, memory). */
export const neverLost: StoreOutages = { lastLost: () => undefined };
