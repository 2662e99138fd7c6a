/**
 * What a wire format module gives the scripted model server (server.ts): how to read a request's
 * history and how to write answers and errors in that provider's shapes. The script, the failure
 * model and the recording are shared by every format.
 */
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Failure, RecordedRequest } from "./script.js";

/** One assistant turn ready to send: tool calls carry the ids the client will see. */
export interface Reply {
  model: string;
  text?: string;
  toolCalls: Array<{ id: string; name: string; input: Record<string, unknown> }>;
  usage: { input_tokens: number; output_tokens: number };
}

export interface WireFormat {
  /** Requests this format answers from the script (e.g. POST /v1/messages). */
  scripted(rec: RecordedRequest): boolean;
  /** Requests it answers on its own (count_tokens, model lists): status and body. */
  direct?(rec: RecordedRequest, model: string): { status: number; body: unknown } | undefined;
  /** The turn a request asks for: the assistant turns already in its history; a string is a 400 message. */
  turnIndex(body: unknown): number | string;
  streaming(body: unknown, rec: RecordedRequest): boolean;
  /** The model the request names, if any (in its body, or its path for Gemini). */
  model(body: unknown, rec: RecordedRequest): string | undefined;
  /** A tool call id in this provider's style, for calls the script names none for. */
  callId(): string;
  errorBody(status: number, message: string): unknown;
  /** Every SSE frame of a streamed answer, in the API's order. */
  events(reply: Reply, body: unknown): string[];
  /** The frame that ends a stream with an error, and the status a non-streaming request gets instead. */
  streamError(failure: Extract<Failure, { kind: "stream-error" }>): { frame: string; status: number };
  json(reply: Reply, body: unknown): unknown;
}

export function randomId(prefix: string, separator = "_"): string {
  return `${prefix}${separator}${randomBytes(12).toString("hex")}`;
}

export function estimateTokens(s: string): number {
  return Math.max(1, Math.ceil(s.length / 4));
}

export function chunks(s: string, size: number): string[] {
  if (s.length === 0) return [""];
  const out: string[] = [];
  for (let i = 0; i < s.length; i += size) out.push(s.slice(i, i + size));
  return out;
}

/** An SSE frame; `event` is omitted for formats that send only `data:` lines (Chat Completions). */
export function sse(data: unknown, event?: string): string {
  return `${event ? `event: ${event}\n` : ""}data: ${typeof data === "string" ? data : JSON.stringify(data)}\n\n`;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
) {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json",
    "content-length": Buffer.byteLength(text),
    "request-id": randomId("req"),
    ...headers,
  });
  res.end(text);
}
