import { setTimeout as delay } from "node:timers/promises";
import { type RetryNotice, sendIdempotent } from "../client/submit-retry.js";
import { type ErrorCode, errorTable, RunyardError } from "../core/errors.js";
import { RunEvent } from "../core/events.js";
import { triggerHeader } from "../core/run-trigger.js";
import { defaultServerUrl, parseServerUrls } from "../core/server-urls.js";
import type { CliContext } from "./context.js";

/** Connection errors that mean a request never reached the server: another one may take it. */
const neverConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH"]);

const errorCode = (error: unknown): string | undefined =>
  (error as { cause?: { code?: string } }).cause?.code;

/** Connection errors after which a request may have gone unanswered: a submit is sent again. */
const droppedConnections: Readonly<Record<string, string>> = {
  ECONNRESET: "the connection was reset",
  EPIPE: "the connection was closed while the request was sent",
  ECONNABORTED: "the connection was aborted",
  UND_ERR_SOCKET: "the connection closed before an answer",
  UND_ERR_CLOSED: "the connection closed before an answer",
};

/** How a client retries submits (`submit`): for how long, and whom it tells. */
export interface SubmitRetry {
  /** How long after its first attempt a submit may be sent again; 0: never. */
  retryForMs: number;
  /** Told before each retry and when it gives up, in a line for stderr. */
  say: (line: string) => void;
}

/**
 * The CLI's way to the server's HTTP API: bearer token, errors as RunyardError with CLI hints (flags
 * and variables, not HTTP headers). Of several replicas, the first, the next while one refuses.
 */
export class ApiClient {
  private current = 0;

  constructor(
    private readonly serverUrls: readonly string[],
    private readonly token: string | undefined,
    private readonly retry: SubmitRetry = { retryForMs: 0, say: () => {} },
  ) {
    if (serverUrls.length === 0) throw new Error("an API client needs at least one server URL");
  }

  /** The server this client talks to: the first of the list that accepted a connection. */
  get baseUrl(): string {
    return this.serverUrls[this.current] ?? "";
  }

  /** A person at the CLI: the runs it submits record the trigger `manual`. */
  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return {
      ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
      [triggerHeader]: "manual",
      ...extra,
    };
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return this.answer<T>(await this.reach(method, path, body));
  }

  /**
   * A request that creates something (a run, a bot, an answer), with a new `Idempotency-Key` sent
   * again on a 503 or a dropped connection for up to `retryForMs`, said on stderr. The server answers
   * a key it has answered with that answer, so the thing is created once.
   */
  async submit<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    const dropped = (error: unknown): string | undefined => {
      const code = errorCode(error);
      return code === undefined ? undefined : droppedConnections[code];
    };
    try {
      response = await sendIdempotent((key) => this.send(method, path, body, { "idempotency-key": key }), {
        retryForMs: this.retry.retryForMs,
        droppedConnection: dropped,
        onRetry: (notice) => this.retry.say(retryLine(method, path, notice)),
        onGiveUp: ({ attempts, reason, elapsedMs }) =>
          this.retry.say(
            `giving up on ${method} ${path} after ${attempts} attempts in ${seconds(elapsedMs)} (--retry-for ${seconds(this.retry.retryForMs)}): ${reason}`,
          ),
      });
    } catch (error) {
      const reason = dropped(error);
      if (reason === undefined) throw unreachable(this.serverUrls, error);
      // Unlike a refused connection, a dropped one may have carried the submit to the server.
      throw new RunyardError(
        "HOST_UNREACHABLE",
        `${method} ${path} got no answer from ${this.baseUrl}: ${reason}`,
        {
          hint: "The server may have taken it before the connection dropped: look with `runyard runs list` before you submit it again, or give it longer with --retry-for.",
        },
      );
    }
    return this.answer<T>(response);
  }

  /** `send`, with a request that reached no server as HOST_UNREACHABLE. */
  private async reach(method: string, path: string, body: unknown): Promise<Response> {
    try {
      return await this.send(method, path, body);
    } catch (error) {
      throw unreachable(this.serverUrls, error);
    }
  }

  private send(
    method: string,
    path: string,
    body: unknown,
    extra: Record<string, string> = {},
  ): Promise<Response> {
    return this.fetchFromServer(path, {
      method,
      headers: this.headers({
        ...(body === undefined ? {} : { "content-type": "application/json" }),
        ...extra,
      }),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  }

  /** A GET whose answer is text (a download), not JSON; errors as `request`'s. */
  async text(path: string): Promise<string> {
    const response = await this.reach("GET", path, undefined);
    if (!response.ok) return this.answer<never>(response);
    return response.text();
  }

  private async answer<T>(response: Response): Promise<T> {
    const text = await response.text();
    const data = text ? this.parseAnswer(response, text) : undefined;
    if (!response.ok) throw this.cliError(fromErrorBody(response.status, data));
    return data as T;
  }

  /** A runyard server answers JSON; anything else is another program on that URL. */
  private parseAnswer(response: Response, text: string): unknown {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      const type = response.headers.get("content-type") ?? "no content type";
      throw new RunyardError(
        "HOST_UNREACHABLE",
        `${this.baseUrl} is not a runyard server: it answered HTTP ${response.status} with ${type.split(";")[0]}, not runyard's JSON`,
        { hint: "Point --server / RUNYARD_SERVER_URL at the URL `runyard up` or `runyard server` printed." },
      );
    }
  }

  /**
   * Follows a run's events over SSE from `after`, reconnecting (with Last-Event-ID) while the
   * server is away, until `run.finished` or, with `follow: false`, the end of what is stored.
   */
  async events(
    runId: string,
    options: { after?: number; follow: boolean; signal?: AbortSignal; onEvent: (event: RunEvent) => void },
  ): Promise<RunEvent | undefined> {
    let last = options.after ?? 0;
    let finished: RunEvent | undefined;
    let backoff = 100;
    let reached = false;
    while (!finished && !options.signal?.aborted) {
      try {
        const path = `/api/runs/${encodeURIComponent(runId)}/events${options.follow ? "" : "?follow=0"}`;
        const response = await this.fetchFromServer(path, {
          headers: this.headers({ accept: "text/event-stream", "last-event-id": String(last) }),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (!response.ok) {
          const error = this.cliError(
            fromErrorBody(response.status, await response.json().catch(() => undefined)),
          );
          // The server is up but its database is not (a restart or failover): wait for it.
          if (error.code === "STORE_UNAVAILABLE") throw new StoreAway(error);
          throw error;
        }
        // 204: the run has ended and nothing after `last` will ever come.
        if (response.status === 204) break;
        backoff = 100;
        reached = true;
        for await (const event of readSse(response)) {
          if (event.seq <= last) continue;
          last = event.seq;
          options.onEvent(event);
          if (event.type === "run.finished") finished = event;
        }
        if (!options.follow) break;
      } catch (error) {
        if ((error instanceof RunyardError && !(error instanceof StoreAway)) || options.signal?.aborted)
          throw error;
        // Never reached at all: a wrong URL or no server, not a restart worth waiting for.
        if (!reached && !(error instanceof StoreAway)) throw unreachable(this.serverUrls, error);
        // The server went away: wait and pick up after the last event we saw.
        await delay(backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    return finished;
  }

  /** Fetches from the current server, the next while one refuses: only a request no server got is resent. */
  private async fetchFromServer(path: string, init: RequestInit): Promise<Response> {
    for (let tried = 1; ; tried += 1) {
      try {
        return await fetch(new URL(path, this.baseUrl), init);
      } catch (error) {
        const code = errorCode(error);
        if (tried >= this.serverUrls.length || code === undefined || !neverConnected.has(code)) throw error;
        this.current = (this.current + 1) % this.serverUrls.length;
      }
    }
  }

  /** Replaces the API's hints (headers, HTTP) with what a CLI user types: flags and variables. */
  private cliError(error: RunyardError): RunyardError {
    const hint =
      error.code === "UNAUTHORIZED"
        ? this.token
          ? "The server refused this token; pass the admin token `runyard up` printed with --token or RUNYARD_TOKEN."
          : "Pass a token with --token or set RUNYARD_TOKEN (`runyard up` prints the admin token on its first start)."
        : error.code === "FORBIDDEN"
          ? "This token may not do that; use a user or admin token (--token / RUNYARD_TOKEN), not a runner token."
          : undefined;
    if (!hint) return error;
    return new RunyardError(error.code, error.message, { hint, details: error.details, cause: error });
  }
}

/** A 503 STORE_UNAVAILABLE while following: the stream is taken up again after a wait. */
class StoreAway extends RunyardError {
  constructor(error: RunyardError) {
    super(error.code, error.message, { hint: error.hint, cause: error });
  }
}

/** The run events of an SSE response; an `error` event (no database) has no `id:` and ends the stream. */
async function* readSse(response: Response): AsyncGenerator<RunEvent> {
  if (!response.body) return;
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let end = buffer.indexOf("\n\n");
    while (end >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const lines = block.split("\n");
      if (lines.includes("event: error")) throw new Error("the server lost its database; resuming");
      const data = lines
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield RunEvent.parse(JSON.parse(data));
      end = buffer.indexOf("\n\n");
    }
  }
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${(ms / 1000).toFixed(1)}s`;
}

function retryLine(method: string, path: string, notice: RetryNotice): string {
  return `retrying ${method} ${path} in ${seconds(notice.waitMs)} (attempt ${notice.attempt}, same Idempotency-Key): ${notice.reason}`;
}

function unreachable(serverUrls: readonly string[], error: unknown): RunyardError {
  const code = errorCode(error) ?? (error as Error).message;
  const why = code === "ECONNREFUSED" ? "connection refused" : code;
  const where =
    serverUrls.length === 1
      ? `the server at ${serverUrls[0]}`
      : `any of the servers ${serverUrls.join(", ")}`;
  const on = serverUrls.length === 1 ? serverUrls[0] : serverUrls.join(" or ");
  return new RunyardError("HOST_UNREACHABLE", `cannot reach ${where}: ${why}`, {
    hint: `Is \`runyard up\` running on ${on}? Start it, or point --server / RUNYARD_SERVER_URL at the server.`,
  });
}

function fromErrorBody(status: number, body: unknown): RunyardError {
  const error = (body as { error?: { code?: string; message?: string; hint?: string; details?: unknown } })
    ?.error;
  const code = (
    error?.code && error.code in errorTable ? error.code : status === 401 ? "UNAUTHORIZED" : "INTERNAL"
  ) as ErrorCode;
  return new RunyardError(code, error?.message ?? `the server answered HTTP ${status}`, {
    ...(error?.hint ? { hint: error.hint } : {}),
    details: error?.details,
  });
}

/** A client of the servers of `--server` / RUNYARD_SERVER_URL, or of the local default. */
export function apiClient(ctx: CliContext): ApiClient {
  const servers = parseServerUrls(ctx.config.serverUrl ?? "");
  return new ApiClient(servers.length > 0 ? servers : [defaultServerUrl], ctx.config.token, {
    retryForMs: ctx.config.retryFor,
    // stderr, also under --json: stdout stays the command's JSON.
    say: (line) => ctx.stderr.write(`${line}\n`),
  });
}
