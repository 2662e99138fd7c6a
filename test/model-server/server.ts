/**
 * A scripted model server for offline tests of AI coding-agent CLIs (issue 9).
 *
 * It listens on a free 127.0.0.1 port and answers in the providers' real wire formats, so the
 * real CLIs run against it unchanged. Today it speaks the Anthropic Messages API
 * (`POST /v1/messages`, streaming and not, and `POST /v1/messages/count_tokens`).
 *
 * A script is a list of conversations; a request belongs to the first conversation whose `match`
 * accepts it (no `match`: accepts all). Within a conversation the turn to answer is the number of
 * assistant messages already in the request's history, so turn 0 answers the prompt, turn 1 answers
 * the first tool result, and so on; a CLI that retries a request gets the same turn again.
 * A turn can fail its first attempts (`failFirst`) before it answers, to drive retry paths.
 *
 * Every request is recorded (`requests`) for assertions.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

/** A failure served instead of an answer. */
export type Failure =
  /** An HTTP error with the provider's error body (401 auth, 429 rate limit, 500 api, 529 overloaded). */
  | {
      kind: "status";
      status: number;
      retryAfterSecs?: number;
      message?: string;
      /** Send `x-should-retry: true|false` (the SDKs obey it over their own status rules). */
      shouldRetry?: boolean;
    }
  /** Accept the request and never send headers. */
  | { kind: "stall" }
  /** Send headers and the first `afterEvents` SSE events (default 1), then hang without ending. */
  | { kind: "stall-mid-stream"; afterEvents?: number }
  /** Status 200, the first `afterEvents` SSE events (default 1), then an `error` event; the stream ends. */
  | { kind: "stream-error"; afterEvents?: number; errorType?: string; message?: string };

/** One assistant turn: text, tool calls (one or more, in one message), or a failure. */
export interface Turn {
  /** Assistant text (emitted before any tool calls). */
  text?: string;
  /** Tool calls; the stop reason is `tool_use` when there is at least one. */
  toolCalls?: Array<{ name: string; input: Record<string, unknown>; id?: string }>;
  /** Fail this turn on its first attempts, in order, then answer. */
  failFirst?: Failure[];
  /** Always fail this turn with this failure. */
  fail?: Failure;
  /** Reported usage; default: estimated from byte lengths. */
  usage?: { input_tokens?: number; output_tokens?: number };
}

export interface Conversation {
  /** Which requests belong here; default: every request. */
  match?: (req: RecordedRequest) => boolean;
  turns: Turn[];
}

export interface Script {
  conversations: Conversation[];
  /** Model name echoed when the request names none. */
  model?: string;
}

export interface RecordedRequest {
  method: string;
  /** Path without the query string. */
  path: string;
  /** Full URL path with query. */
  url: string;
  headers: IncomingMessage["headers"];
  rawBody: string;
  /** Parsed JSON body, or undefined if the body is not JSON. */
  body: unknown;
  /** What the server did: the conversation and turn it answered, or why not. */
  outcome?: string;
}

export interface ModelServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /** Replace the script (attempt counters reset). */
  setScript(script: Script): void;
  stop(): Promise<void>;
}

/** A model server from a bare list of turns: one conversation matching everything. */
export function turns(...list: Turn[]): Script {
  return { conversations: [{ turns: list }] };
}

type Block = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: unknown };

interface MessagesBody {
  model?: string;
  stream?: boolean;
  messages?: Array<{ role?: string; content?: unknown }>;
}

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  529: "overloaded_error",
};

function id(prefix: string): string {
  return `${prefix}_${randomBytes(12).toString("hex")}`;
}

function estimateTokens(s: string): number {
  return Math.max(1, Math.ceil(s.length / 4));
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "request-id": id("req"),
    ...headers,
  });
  res.end(text);
}

function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
) {
  sendJson(
    res,
    status,
    { type: "error", error: { type: ERROR_TYPES[status] ?? "api_error", message } },
    headers,
  );
}

/** The SSE events of one streamed message, in the API's order. */
export function messageEvents(
  model: string,
  blocks: Block[],
  stopReason: "end_turn" | "tool_use",
  usage: { input_tokens: number; output_tokens: number },
): Array<{ event: string; data: Record<string, unknown> }> {
  const events: Array<{ event: string; data: Record<string, unknown> }> = [];
  events.push({
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: id("msg"),
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: usage.input_tokens,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          output_tokens: 1,
        },
      },
    },
  });
  events.push({ event: "ping", data: { type: "ping" } });
  blocks.forEach((block, index) => {
    if (block.type === "text") {
      events.push({
        event: "content_block_start",
        data: { type: "content_block_start", index, content_block: { type: "text", text: "" } },
      });
      for (const chunk of chunks(block.text, 16)) {
        events.push({
          event: "content_block_delta",
          data: { type: "content_block_delta", index, delta: { type: "text_delta", text: chunk } },
        });
      }
    } else {
      events.push({
        event: "content_block_start",
        data: {
          type: "content_block_start",
          index,
          content_block: { type: "tool_use", id: block.id, name: block.name, input: {} },
        },
      });
      for (const chunk of chunks(JSON.stringify(block.input), 16)) {
        events.push({
          event: "content_block_delta",
          data: {
            type: "content_block_delta",
            index,
            delta: { type: "input_json_delta", partial_json: chunk },
          },
        });
      }
    }
    events.push({ event: "content_block_stop", data: { type: "content_block_stop", index } });
  });
  events.push({
    event: "message_delta",
    data: {
      type: "message_delta",
      delta: { stop_reason: stopReason, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    },
  });
  events.push({ event: "message_stop", data: { type: "message_stop" } });
  return events;
}

function chunks(s: string, size: number): string[] {
  if (s.length === 0) return [""];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

function sse(e: { event: string; data: unknown }): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

export async function startModelServer(script: Script): Promise<ModelServer> {
  let current = script;
  /** Attempts per "conversation index/turn index", for `failFirst`. */
  let attempts = new Map<string, number>();
  const requests: RecordedRequest[] = [];

  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (c: Buffer) => parts.push(c));
    req.on("end", () => {
      const rawBody = Buffer.concat(parts).toString("utf8");
      let body: unknown;
      try {
        body = rawBody ? JSON.parse(rawBody) : undefined;
      } catch {
        body = undefined;
      }
      const url = req.url ?? "/";
      const rec: RecordedRequest = {
        method: req.method ?? "GET",
        path: new URL(url, "http://x").pathname,
        url,
        headers: req.headers,
        rawBody,
        body,
      };
      requests.push(rec);
      handle(rec, res);
    });
  });

  function handle(rec: RecordedRequest, res: ServerResponse): void {
    if (rec.method === "POST" && rec.path === "/v1/messages/count_tokens") {
      rec.outcome = "count_tokens";
      sendJson(res, 200, { input_tokens: estimateTokens(rec.rawBody) });
      return;
    }
    if (rec.method !== "POST" || rec.path !== "/v1/messages") {
      rec.outcome = "not found";
      sendError(res, 404, `model server: no route ${rec.method} ${rec.path}`);
      return;
    }
    const body = rec.body as MessagesBody | undefined;
    if (!body || !Array.isArray(body.messages)) {
      rec.outcome = "bad request";
      sendError(res, 400, "messages: field required");
      return;
    }
    const ci = current.conversations.findIndex((c) => !c.match || c.match(rec));
    const conv = current.conversations[ci];
    if (!conv) {
      rec.outcome = "no conversation matched";
      sendError(res, 500, "model server: no scripted conversation matches this request");
      return;
    }
    const ti = body.messages.filter((m) => m.role === "assistant").length;
    const turn = conv.turns[ti];
    if (!turn) {
      rec.outcome = `conversation ${ci}: script exhausted at turn ${ti}`;
      sendError(res, 500, `model server: script exhausted (conversation ${ci}, turn ${ti})`);
      return;
    }
    const key = `${ci}/${ti}`;
    const attempt = attempts.get(key) ?? 0;
    attempts.set(key, attempt + 1);
    const failure = turn.fail ?? turn.failFirst?.[attempt];
    const model = body.model ?? current.model ?? "claude-scripted";
    rec.outcome = `conversation ${ci} turn ${ti} attempt ${attempt}${failure ? ` failed: ${failure.kind}` : ""}`;

    const blocks: Block[] = [];
    if (turn.text !== undefined) blocks.push({ type: "text", text: turn.text });
    for (const call of turn.toolCalls ?? []) {
      blocks.push({ type: "tool_use", id: call.id ?? id("toolu"), name: call.name, input: call.input });
    }
    if (blocks.length === 0) blocks.push({ type: "text", text: "" });
    const stopReason = turn.toolCalls?.length ? "tool_use" : "end_turn";
    const usage = {
      input_tokens: turn.usage?.input_tokens ?? estimateTokens(rec.rawBody),
      output_tokens:
        turn.usage?.output_tokens ??
        estimateTokens(blocks.map((b) => (b.type === "text" ? b.text : JSON.stringify(b.input))).join("")),
    };

    if (failure?.kind === "status") {
      const headers: Record<string, string> = {};
      if (failure.retryAfterSecs !== undefined) headers["retry-after"] = String(failure.retryAfterSecs);
      if (failure.shouldRetry !== undefined) headers["x-should-retry"] = String(failure.shouldRetry);
      sendError(res, failure.status, failure.message ?? `model server: scripted ${failure.status}`, headers);
      return;
    }
    if (failure?.kind === "stall") return; // never answer; stop() destroys the socket

    if (!body.stream) {
      if (failure?.kind === "stream-error") {
        sendError(res, 529, failure.message ?? "Overloaded");
        return;
      }
      if (failure?.kind === "stall-mid-stream") {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"id":');
        return;
      }
      sendJson(res, 200, {
        id: id("msg"),
        type: "message",
        role: "assistant",
        model,
        content: blocks,
        stop_reason: stopReason,
        stop_sequence: null,
        usage: { ...usage, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
      });
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "request-id": id("req"),
    });
    const events = messageEvents(model, blocks, stopReason, usage);
    if (failure?.kind === "stall-mid-stream") {
      for (const e of events.slice(0, failure.afterEvents ?? 1)) res.write(sse(e));
      return;
    }
    if (failure?.kind === "stream-error") {
      for (const e of events.slice(0, failure.afterEvents ?? 1)) res.write(sse(e));
      const error = {
        type: failure.errorType ?? "overloaded_error",
        message: failure.message ?? "Overloaded",
      };
      res.end(sse({ event: "error", data: { type: "error", error } }));
      return;
    }
    for (const e of events) res.write(sse(e));
    res.end();
  }

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    setScript(s: Script) {
      current = s;
      attempts = new Map();
    },
    stop() {
      return new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
