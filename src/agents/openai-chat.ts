/**
 * One streamed Chat Completions call of the built-in `openai` loop (`stream_options.include_usage`),
 * its SSE chunks joined into one message. Retries 429, 5xx and network failures with exponential
 * backoff (a `retry-after` wins), never other 4xx: a wrong key stays wrong.
 */

import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { internalRangeOf } from "../core/outbound/internal-addresses.js";
import { LineSplitter } from "./cli-agent.js";

export interface ToolCall {
  id: string;
  type: "function";
  function: { name: string; arguments: string };
}

export type ChatMessage =
  | { role: "system" | "user"; content: string }
  | { role: "assistant"; content: string | null; tool_calls?: ToolCall[] }
  | { role: "tool"; tool_call_id: string; content: string };

export interface Completion {
  message: { role: "assistant"; content: string | null; tool_calls?: ToolCall[] };
  finishReason: string | null;
  model?: string;
  usage?: { inputTokens: number; outputTokens: number };
}

/** A failed call: `status` is the HTTP status, or undefined when no answer came (network, cut stream). */
export class ChatApiError extends Error {
  constructor(
    message: string,
    readonly status: number | undefined,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  get retryable(): boolean {
    return this.status === undefined || this.status === 429 || this.status >= 500;
  }
}

export interface ChatRequest {
  baseUrl: string;
  apiKey: string;
  /**
   * Call only public addresses (a member's endpoint, for a turn whose egress is held): the name is
   * resolved once, every address checked, and the connection made to the one checked.
   */
  publicOnly?: boolean;
  body: Record<string, unknown>;
  signal: AbortSignal;
  /** Each chunk of the answer as it arrives. */
  alive(): void;
}

export interface RetryPolicy {
  /** Retries after the first attempt. */
  retries: number;
  /** First backoff; doubled each retry. */
  baseDelayMs: number;
  /** No wait is longer, not even a server's retry-after. */
  maxDelayMs: number;
}

/** The agent runner's `llm_retry_count` default: three retries. */
export const defaultRetryPolicy: RetryPolicy = { retries: 3, baseDelayMs: 1000, maxDelayMs: 60_000 };

/** Calls the API until it answers, a failure is not worth retrying, or the retries are used up. */
export async function chatWithRetries(
  request: ChatRequest,
  policy: RetryPolicy = defaultRetryPolicy,
  onRetry?: (error: ChatApiError, delayMs: number) => void,
): Promise<Completion> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await streamChat(request);
    } catch (error) {
      if (request.signal.aborted) throw error;
      const failure = error instanceof ChatApiError ? error : new ChatApiError(String(error), undefined);
      if (!failure.retryable || attempt >= policy.retries) throw failure;
      const delayMs = retryDelayMs(failure, attempt, policy);
      onRetry?.(failure, delayMs);
      await delay(delayMs, undefined, { signal: request.signal });
    }
  }
}

/** The server's retry-after if it gave one, else the exponential backoff with jitter. */
export function retryDelayMs(error: ChatApiError, attempt: number, policy: RetryPolicy): number {
  if (error.retryAfterMs !== undefined) return Math.min(error.retryAfterMs, policy.maxDelayMs);
  const backoff = policy.baseDelayMs * 2 ** attempt;
  return Math.min(policy.maxDelayMs, backoff * (0.75 + Math.random() * 0.5));
}

/** `retry-after-ms` (OpenAI) or `retry-after` in seconds or as an HTTP date. */
export function parseRetryAfter(headers: Headers): number | undefined {
  const ms = Number(headers.get("retry-after-ms"));
  if (headers.has("retry-after-ms") && Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers.get("retry-after");
  if (value === null) return undefined;
  const secs = Number(value);
  if (Number.isFinite(secs) && secs >= 0) return secs * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** One call, streamed. Throws ChatApiError for an HTTP error, an error chunk or a cut stream. */
export async function streamChat(request: ChatRequest): Promise<Completion> {
  const url = `${request.baseUrl.replace(/\/+$/, "")}/chat/completions`;
  let res: Response;
  try {
    const init = {
      method: "POST",
      headers: {
        "content-type": "application/json",
        authorization: `Bearer ${request.apiKey}`,
        accept: "text/event-stream",
      },
      body: JSON.stringify({ ...request.body, stream: true, stream_options: { include_usage: true } }),
      signal: request.signal,
    };
    res = request.publicOnly ? await publicFetch(url, init) : await fetch(url, init);
  } catch (error) {
    if (request.signal.aborted) throw error;
    throw new ChatApiError(`cannot reach ${url}: ${causeOf(error)}`, undefined);
  }
  request.alive();
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new ChatApiError(
      `${res.status} ${res.statusText}: ${errorMessage(text)}`,
      res.status,
      parseRetryAfter(res.headers),
    );
  }
  // A server that ignores `stream` answers with one JSON completion.
  if (!(res.headers.get("content-type") ?? "").includes("text/event-stream")) {
    return completionFromJson(JSON.parse(await res.text()));
  }
  const stream = new ChatStream();
  const decoder = new TextDecoder();
  const lines = new LineSplitter((line) => stream.line(line), Number.POSITIVE_INFINITY);
  try {
    for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
      request.alive();
      lines.push(decoder.decode(bytes, { stream: true }));
    }
  } catch (error) {
    if (request.signal.aborted || error instanceof ChatApiError) throw error;
    throw new ChatApiError(`the answer stream broke off: ${causeOf(error)}`, undefined);
  }
  lines.end();
  return stream.result();
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause;
  const text = (e: unknown) => (e instanceof Error ? e.message : String(e));
  return cause ? `${text(error)} (${text(cause)})` : text(error);
}

/** The message of an OpenAI-style error body, or the body itself. */
function errorMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { error?: { message?: string } | string; message?: string };
    if (typeof parsed.error === "string") return parsed.error;
    return parsed.error?.message ?? parsed.message ?? body.slice(0, 500);
  } catch {
    return body.slice(0, 500) || "(no body)";
  }
}

interface ChunkChoice {
  delta?: {
    content?: string | null;
    tool_calls?: Array<{ index?: number; id?: string; function?: { name?: string; arguments?: string } }>;
  };
  message?: Completion["message"];
  finish_reason?: string | null;
}

interface Chunk {
  model?: string;
  choices?: ChunkChoice[];
  usage?: { prompt_tokens?: number; completion_tokens?: number } | null;
  error?: { message?: string; type?: string; code?: string | null };
}

/** Puts a Chat Completions SSE stream back together, a line at a time. */
export class ChatStream {
  private text: string | null = null;
  private readonly calls: ToolCall[] = [];
  private finishReason: string | null = null;
  private model: string | undefined;
  private usage: Completion["usage"];
  private done = false;

  line(line: string): void {
    if (!line.startsWith("data:")) return; // event names, comments (": keep-alive"), blank lines
    const data = line.slice(5).trim();
    if (data === "[DONE]") {
      this.done = true;
      return;
    }
    if (!data) return;
    const chunk = JSON.parse(data) as Chunk;
    if (chunk.error) {
      const status = chunk.error.code === "rate_limit_exceeded" ? 429 : 500;
      throw new ChatApiError(
        `error in the answer stream: ${chunk.error.message ?? chunk.error.type}`,
        status,
      );
    }
    this.model ??= chunk.model;
    if (chunk.usage) {
      this.usage = {
        inputTokens: chunk.usage.prompt_tokens ?? 0,
        outputTokens: chunk.usage.completion_tokens ?? 0,
      };
    }
    const choice = chunk.choices?.[0];
    if (!choice) return;
    const delta = choice.delta ?? {};
    if (typeof delta.content === "string") this.text = (this.text ?? "") + delta.content;
    for (const part of delta.tool_calls ?? []) {
      const index = part.index ?? this.calls.length;
      let call = this.calls[index];
      if (!call) {
        call = { id: "", type: "function", function: { name: "", arguments: "" } };
        this.calls[index] = call;
      }
      if (part.id) call.id = part.id;
      if (part.function?.name) call.function.name += part.function.name;
      if (part.function?.arguments) call.function.arguments += part.function.arguments;
    }
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
  }

  result(): Completion {
    if (!this.done && this.finishReason === null) {
      throw new ChatApiError("the answer stream ended before the answer did", undefined);
    }
    const toolCalls = this.calls.filter((c) => c !== undefined);
    toolCalls.forEach((call, i) => {
      if (!call.id) call.id = `call_${i}`;
    });
    return {
      message: {
        role: "assistant",
        content: this.text,
        ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}),
      },
      finishReason: this.finishReason,
      ...(this.model ? { model: this.model } : {}),
      ...(this.usage ? { usage: this.usage } : {}),
    };
  }
}

function completionFromJson(body: Chunk): Completion {
  const choice = body.choices?.[0];
  if (!choice?.message) throw new ChatApiError("the answer has no message", 500);
  return {
    message: {
      role: "assistant",
      content: choice.message.content ?? null,
      ...(choice.message.tool_calls?.length ? { tool_calls: choice.message.tool_calls } : {}),
    },
    finishReason: choice.finish_reason ?? null,
    ...(body.model ? { model: body.model } : {}),
    ...(body.usage
      ? {
          usage: {
            inputTokens: body.usage.prompt_tokens ?? 0,
            outputTokens: body.usage.completion_tokens ?? 0,
          },
        }
      : {}),
  };
}

/**
 * A POST to public addresses only: the host resolved once, every address checked, the connection made
 * to the first, so no name or changing DNS answer leads into the runner's network.
 */
async function publicFetch(
  url: string,
  init: { method: string; headers: Record<string, string>; body: string; signal: AbortSignal },
): Promise<Response> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, "");
  const internal = isIP(host) ? internalRangeOf(host) : undefined;
  if (internal) throw new Error(`${host} is an internal address (${internal})`);
  const lookup: LookupFunction = (name, options, callback) => {
    dnsLookup(name, { all: true }, (error, addresses) => {
      if (error) return callback(error, "", 0);
      const inside = addresses.find((found) => internalRangeOf(found.address) !== undefined);
      if (inside || addresses.length === 0) {
        return callback(
          new Error(`${name} leads to ${inside?.address ?? "no address"}, an internal address`),
          "",
          0,
        );
      }
      const first = addresses[0]!;
      if ((options as { all?: boolean }).all) return (callback as AllCallback)(null, [first]);
      callback(null, first.address, first.family);
    });
  };
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      target,
      { method: init.method, headers: init.headers, signal: init.signal, lookup },
      (answer) => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(answer.headers)) {
          for (const one of Array.isArray(value) ? value : value === undefined ? [] : [value])
            headers.append(name, one);
        }
        const body = Readable.toWeb(answer) as unknown as ReadableStream<Uint8Array>;
        resolve(
          new Response(body, {
            status: answer.statusCode ?? 502,
            statusText: answer.statusMessage ?? "",
            headers,
          }),
        );
      },
    );
    req.on("error", (error) => reject(Object.assign(new Error("fetch failed"), { cause: error })));
    req.end(init.body);
  });
}

type AllCallback = (error: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void;
