import { setTimeout as delay } from "node:timers/promises";
import { type ErrorCode, errorTable, RunyardError } from "../core/errors.js";
import { RunEvent } from "../core/events.js";

/**
 * The CLI's way to the server's HTTP API: bearer token, errors turned into RunyardError with
 * hints a CLI user can act on (flags and variables, not HTTP headers).
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string | undefined,
  ) {
    if (!/^https?:\/\//i.test(baseUrl)) {
      throw new RunyardError("USAGE", `"${baseUrl}" is not a server URL`, {
        hint: `Did you mean http://${baseUrl.replace(/^\/+/, "")}? (--server / RUNYARD_SERVER_URL)`,
      });
    }
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { ...(this.token ? { authorization: `Bearer ${this.token}` } : {}), ...extra };
  }

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let response: Response;
    try {
      response = await fetch(new URL(path, this.baseUrl), {
        method,
        headers: this.headers(body === undefined ? {} : { "content-type": "application/json" }),
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw unreachable(this.baseUrl, error);
    }
    const text = await response.text();
    const data = text ? (JSON.parse(text) as unknown) : undefined;
    if (!response.ok) throw this.cliError(fromErrorBody(response.status, data));
    return data as T;
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
        const url = new URL(`/api/runs/${encodeURIComponent(runId)}/events`, this.baseUrl);
        if (!options.follow) url.searchParams.set("follow", "0");
        const response = await fetch(url, {
          headers: this.headers({ accept: "text/event-stream", "last-event-id": String(last) }),
          ...(options.signal ? { signal: options.signal } : {}),
        });
        if (!response.ok)
          throw this.cliError(fromErrorBody(response.status, await response.json().catch(() => undefined)));
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
        if (error instanceof RunyardError || options.signal?.aborted) throw error;
        // Never reached at all: a wrong URL or no server, not a restart worth waiting for.
        if (!reached) throw unreachable(this.baseUrl, error);
        // The server went away: wait and pick up after the last event we saw.
        await delay(backoff);
        backoff = Math.min(backoff * 2, 2000);
      }
    }
    return finished;
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
      const data = block
        .split("\n")
        .filter((line) => line.startsWith("data:"))
        .map((line) => line.slice(5).trimStart())
        .join("\n");
      if (data) yield RunEvent.parse(JSON.parse(data));
      end = buffer.indexOf("\n\n");
    }
  }
}

function unreachable(baseUrl: string, error: unknown): RunyardError {
  const code = (error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message;
  const why = code === "ECONNREFUSED" ? "connection refused" : code;
  return new RunyardError("HOST_UNREACHABLE", `cannot reach the server at ${baseUrl}: ${why}`, {
    hint: `Is \`runyard up\` running on ${baseUrl}? Start it, or point --server / RUNYARD_SERVER_URL at the server.`,
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
