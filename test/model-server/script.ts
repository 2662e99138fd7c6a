/** The script a model server follows, shared by every wire format (see server.ts). */
import type { IncomingMessage } from "node:http";

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
  /** Status 200, the first `afterEvents` SSE events (default 1), then an error event; the stream ends. */
  | { kind: "stream-error"; afterEvents?: number; errorType?: string; message?: string };

/** One assistant turn: text, tool calls (one or more, in one message), or a failure. */
export interface Turn {
  /** Assistant text (emitted before any tool calls). */
  text?: string;
  /** Tool calls, named as the client's own tools; the turn stops for tool use when there is one. */
  toolCalls?: Array<{ name: string; input: Record<string, unknown>; id?: string }>;
  /** Fail this turn on its first attempts, in order, then answer. */
  failFirst?: Failure[];
  /** Always fail this turn with this failure. */
  fail?: Failure;
  /** Reported usage; default: estimated from byte lengths. */
  usage?: { input_tokens?: number; output_tokens?: number };
  /** Answer only once this settles: a test holds a turn open while it checks something. */
  after?: Promise<unknown>;
}

export interface Conversation {
  /** Which requests belong here; default: every request. */
  match?: (req: RecordedRequest) => boolean;
  turns: Turn[];
}

export interface Script {
  conversations: Conversation[];
  /** Model name echoed when the request names none, and listed by GET /v1/models. */
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
  /** When its body had arrived (`Date.now()`): what a stall's time is counted from. */
  at: number;
  /** What the server did: the conversation and turn it answered, or why not. */
  outcome?: string;
}

/** A model server from a bare list of turns: one conversation matching everything. */
export function turns(...list: Turn[]): Script {
  return { conversations: [{ turns: list }] };
}
