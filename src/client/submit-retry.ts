/**
 * Submits that survive a server restart or a database failover: each submit gets one new
 * `Idempotency-Key`, and is sent again with that same key while the server answers 503 (or 409
 * IDEMPOTENCY_KEY_IN_USE: the first attempt is still being answered) or the connection drops
 * before an answer, honouring `Retry-After`, with back-off, for up to `retryForMs`. The server
 * answers a key it has answered before with that first answer, so the submit lands once.
 * Shared by the CLI and the web UI: only `fetch`'s `Response` and Web Crypto, no Node.js API.
 */

/** One more attempt about to be made, and why. */
export interface RetryNotice {
  /** The attempt about to be made: 2 for the first retry. */
  attempt: number;
  /** Why the last attempt did not land, in words: "the server answered 503 STORE_UNAVAILABLE". */
  reason: string;
  /** How long it waits before the attempt, in ms. */
  waitMs: number;
}

export interface SubmitRetryOptions {
  /** How long after the first attempt another may start; 0 sends once. */
  retryForMs: number;
  /** Told before each retry (the CLI writes it to stderr, the web UI shows it). */
  onRetry?: (notice: RetryNotice) => void;
  /** Told when the time is up and the last failure is the answer. */
  onGiveUp?: (notice: { attempts: number; reason: string; elapsedMs: number }) => void;
  /**
   * Why a failed attempt (a thrown `fetch`) may not have been answered and is worth sending
   * again: a reset, a connection closed before the answer. Undefined: the error stands.
   */
  droppedConnection: (error: unknown) => string | undefined;
  /** Stops waiting between attempts. */
  signal?: AbortSignal;
}

/** The back-off between attempts when the server says nothing of when to come back. */
const firstWaitMs = 250;
const longestWaitMs = 8000;

/** A new key for one submit: 128 random bits as hex (Web Crypto, which browsers have on plain HTTP too). */
export function newIdempotencyKey(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");
}

/** `Retry-After` in ms: delta-seconds or an HTTP date; undefined when absent or unreadable. */
export function retryAfterMs(value: string | null, now = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const at = Date.parse(value);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Why an answer is worth sending the request again for; undefined when it is the answer. */
async function retryableAnswer(response: Response): Promise<string | undefined> {
  if (response.status !== 503 && response.status !== 409) return undefined;
  const error = await response
    .clone()
    .json()
    .then((body: unknown) => (body as { error?: { code?: unknown; message?: unknown } } | null)?.error)
    .catch(() => undefined);
  const code = typeof error?.code === "string" ? error.code : undefined;
  if (response.status === 409) {
    return code === "IDEMPOTENCY_KEY_IN_USE"
      ? "the first attempt is still being answered (409 IDEMPOTENCY_KEY_IN_USE)"
      : undefined;
  }
  const message = typeof error?.message === "string" ? `: ${error.message}` : "";
  return `the server answered 503${code ? ` ${code}` : ""}${message}`;
}

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Sends one submit (`send(key)` makes one attempt with the `Idempotency-Key` header), again
 * while it is worth it. Resolves with the first answer that is not worth retrying, or, when the
 * time is up, the last answer; rejects with the last error when that was a dropped connection,
 * or at once with an error that is not one.
 */
export async function sendIdempotent(
  send: (key: string) => Promise<Response>,
  options: SubmitRetryOptions,
): Promise<Response> {
  const key = newIdempotencyKey();
  const started = Date.now();
  let backoff = firstWaitMs;
  for (let attempt = 1; ; attempt += 1) {
    let outcome: { response: Response } | { error: unknown };
    let reason: string | undefined;
    let serverWait: number | undefined;
    try {
      const response = await send(key);
      reason = await retryableAnswer(response);
      if (reason === undefined) return response;
      outcome = { response };
      serverWait = retryAfterMs(response.headers.get("retry-after"));
    } catch (error) {
      reason = options.droppedConnection(error);
      if (reason === undefined) throw error;
      outcome = { error };
    }
    const waitMs = serverWait ?? backoff;
    backoff = Math.min(backoff * 2, longestWaitMs);
    const elapsedMs = Date.now() - started;
    if (elapsedMs + waitMs > options.retryForMs) {
      if (options.retryForMs > 0) options.onGiveUp?.({ attempts: attempt, reason, elapsedMs });
      if ("response" in outcome) return outcome.response;
      throw outcome.error;
    }
    options.onRetry?.({ attempt: attempt + 1, reason, waitMs });
    await wait(waitMs, options.signal);
  }
}
