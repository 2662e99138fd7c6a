/**
 * The Anthropic Messages API: `POST /v1/messages` (query such as `?beta=true` ignored), streaming
 * and not, and `POST /v1/messages/count_tokens`. The turn is the number of `assistant` messages.
 */
import type { RecordedRequest } from "./script.js";
import { chunks, estimateTokens, type Reply, randomId, sse, type WireFormat } from "./wire.js";

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

type Block = { type: "text"; text: string } | { type: "tool_use"; id: string; name: string; input: unknown };

function blocks(reply: Reply): Block[] {
  const out: Block[] = [];
  if (reply.text !== undefined) out.push({ type: "text", text: reply.text });
  for (const call of reply.toolCalls) out.push({ type: "tool_use", ...call });
  if (out.length === 0) out.push({ type: "text", text: "" });
  return out;
}

function stopReason(reply: Reply): "end_turn" | "tool_use" {
  return reply.toolCalls.length > 0 ? "tool_use" : "end_turn";
}

/** The SSE events of one streamed message, in the API's order. */
export function messageEvents(reply: Reply): Array<{ event: string; data: Record<string, unknown> }> {
  const events: Array<{ event: string; data: Record<string, unknown> }> = [];
  events.push({
    event: "message_start",
    data: {
      type: "message_start",
      message: {
        id: randomId("msg"),
        type: "message",
        role: "assistant",
        model: reply.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: reply.usage.input_tokens,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
          output_tokens: 1,
        },
      },
    },
  });
  events.push({ event: "ping", data: { type: "ping" } });
  blocks(reply).forEach((block, index) => {
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
      delta: { stop_reason: stopReason(reply), stop_sequence: null },
      usage: { output_tokens: reply.usage.output_tokens },
    },
  });
  events.push({ event: "message_stop", data: { type: "message_stop" } });
  return events;
}

function errorBody(status: number, message: string) {
  return { type: "error", error: { type: ERROR_TYPES[status] ?? "api_error", message } };
}

export const anthropic: WireFormat = {
  scripted: (rec) => rec.method === "POST" && rec.path === "/v1/messages",
  direct(rec: RecordedRequest) {
    if (rec.method === "POST" && rec.path === "/v1/messages/count_tokens") {
      return { status: 200, body: { input_tokens: estimateTokens(rec.rawBody) } };
    }
    return undefined;
  },
  turnIndex(body) {
    const messages = (body as MessagesBody | undefined)?.messages;
    if (!Array.isArray(messages)) return "messages: field required";
    return messages.filter((m) => m.role === "assistant").length;
  },
  streaming: (body) => (body as MessagesBody).stream === true,
  model: (body) => (body as MessagesBody).model,
  callId: () => randomId("toolu"),
  errorBody,
  events: (reply) => messageEvents(reply).map((e) => sse(e.data, e.event)),
  streamError(failure) {
    const error = { type: failure.errorType ?? "overloaded_error", message: failure.message ?? "Overloaded" };
    return { frame: sse({ type: "error", error }, "error"), status: 529 };
  },
  json: (reply) => ({
    id: randomId("msg"),
    type: "message",
    role: "assistant",
    model: reply.model,
    content: blocks(reply),
    stop_reason: stopReason(reply),
    stop_sequence: null,
    usage: { ...reply.usage, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  }),
};
