/**
 * The Gemini API (gemini CLI): `POST /v1beta/models/MODEL:streamGenerateContent?alt=sse` (SSE of
 * `GenerateContentResponse` chunks, `data:` only), `:generateContent`, `:countTokens`, and
 * `GET /v1beta/models`. The model is in the path. The turn is the number of `model` contents in
 * `contents` (one per answer, its text and function calls together; function responses come
 * back in a `user` content).
 */
import type { RecordedRequest } from "./script.js";
import { chunks, estimateTokens, type Reply, sse, type WireFormat } from "./wire.js";

interface GeminiBody {
  contents?: Array<{ role?: string; parts?: unknown[] }>;
}

const ROUTE = /^\/(v1beta|v1|v1alpha)\/models\/([^/:]+):(streamGenerateContent|generateContent|countTokens)$/;

function route(rec: RecordedRequest): { model: string; method: string } | undefined {
  const m = ROUTE.exec(rec.path);
  return m ? { model: decodeURIComponent(m[2]!), method: m[3]! } : undefined;
}

const STATUSES: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
  504: "DEADLINE_EXCEEDED",
};

function errorBody(code: number, message: string) {
  return { error: { code, message, status: STATUSES[code] ?? "UNKNOWN" } };
}

function usageMetadata(reply: Reply) {
  return {
    promptTokenCount: reply.usage.input_tokens,
    candidatesTokenCount: reply.usage.output_tokens,
    totalTokenCount: reply.usage.input_tokens + reply.usage.output_tokens,
  };
}

function response(reply: Reply, parts: unknown[], finished: boolean) {
  return {
    candidates: [
      {
        content: { role: "model", parts },
        ...(finished ? { finishReason: "STOP" } : {}),
        index: 0,
      },
    ],
    // The API sends usage on every chunk; the prompt count is final, the candidates count grows.
    usageMetadata: finished ? usageMetadata(reply) : { promptTokenCount: reply.usage.input_tokens },
    modelVersion: reply.model,
    responseId: `resp-${Date.now().toString(36)}`,
  };
}

function functionCalls(reply: Reply) {
  return reply.toolCalls.map((c) => ({ functionCall: { id: c.id, name: c.name, args: c.input } }));
}

export const gemini: WireFormat = {
  scripted: (rec) =>
    rec.method === "POST" && route(rec)?.method !== undefined && route(rec)?.method !== "countTokens",
  direct(rec, model) {
    if (rec.method === "POST" && route(rec)?.method === "countTokens") {
      return { status: 200, body: { totalTokens: estimateTokens(rec.rawBody) } };
    }
    if (rec.method === "GET" && /^\/(v1beta|v1)\/models$/.test(rec.path)) {
      return {
        status: 200,
        body: {
          models: [
            {
              name: `models/${model}`,
              displayName: model,
              supportedGenerationMethods: ["generateContent", "streamGenerateContent", "countTokens"],
            },
          ],
        },
      };
    }
    return undefined;
  },
  turnIndex(body) {
    const contents = (body as GeminiBody | undefined)?.contents;
    if (!Array.isArray(contents)) return "contents: field required";
    return contents.filter((c) => c.role === "model").length;
  },
  streaming: (_body, rec) => route(rec)?.method === "streamGenerateContent",
  model: (_body, rec) => route(rec)?.model,
  callId: () => `call-${Math.random().toString(36).slice(2, 10)}`,
  errorBody,
  events(reply) {
    const frames: string[] = [];
    const text = reply.text ?? "";
    const pieces = text ? chunks(text, 16) : [];
    pieces.forEach((piece, i) => {
      const last = i === pieces.length - 1 && reply.toolCalls.length === 0;
      frames.push(sse(response(reply, [{ text: piece }], last)));
    });
    if (reply.toolCalls.length > 0) frames.push(sse(response(reply, functionCalls(reply), true)));
    if (frames.length === 0) frames.push(sse(response(reply, [{ text: "" }], true)));
    return frames;
  },
  streamError(failure) {
    return {
      frame: sse(errorBody(503, failure.message ?? "The model is overloaded. Please try again later.")),
      status: 503,
    };
  },
  json: (reply) =>
    response(
      reply,
      [...(reply.text !== undefined ? [{ text: reply.text }] : []), ...functionCalls(reply)],
      true,
    ),
};
