/**
 * The OpenAI Chat Completions API: `POST /v1/chat/completions` (also without `/v1`), streaming
 * `chat.completion.chunk`s ending in `data: [DONE]` (a usage chunk first when
 * `stream_options.include_usage`) and not, and `GET /v1/models`. The turn is the number of
 * `assistant` messages: one per answer, its text and tool calls together.
 */
import { modelList, openAiError, openAiPath } from "./openai-errors.js";
import { chunks, type Reply, randomId, sse, type WireFormat } from "./wire.js";

interface ChatBody {
  model?: string;
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  messages?: Array<{ role?: string }>;
}

function usage(reply: Reply) {
  return {
    prompt_tokens: reply.usage.input_tokens,
    completion_tokens: reply.usage.output_tokens,
    total_tokens: reply.usage.input_tokens + reply.usage.output_tokens,
  };
}

const finishReason = (reply: Reply) => (reply.toolCalls.length > 0 ? "tool_calls" : "stop");

export const openAiChat: WireFormat = {
  scripted: (rec) => rec.method === "POST" && openAiPath(rec.path) === "/chat/completions",
  direct(rec, model) {
    if (rec.method === "GET" && openAiPath(rec.path) === "/models")
      return { status: 200, body: modelList(model) };
    return undefined;
  },
  turnIndex(body) {
    const messages = (body as ChatBody | undefined)?.messages;
    if (!Array.isArray(messages)) return "messages: field required";
    return messages.filter((m) => m.role === "assistant").length;
  },
  streaming: (body) => (body as ChatBody).stream === true,
  model: (body) => (body as ChatBody).model,
  callId: () => randomId("call"),
  errorBody: openAiError,
  events(reply, body) {
    const id = randomId("chatcmpl", "-");
    const created = Math.floor(Date.now() / 1000);
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
      sse({
        id,
        object: "chat.completion.chunk",
        created,
        model: reply.model,
        system_fingerprint: "fp_scripted",
        choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }],
      });
    const frames = [chunk({ role: "assistant", content: "", refusal: null })];
    if (reply.text) for (const piece of chunks(reply.text, 16)) frames.push(chunk({ content: piece }));
    reply.toolCalls.forEach((call, index) => {
      frames.push(
        chunk({
          tool_calls: [
            { index, id: call.id, type: "function", function: { name: call.name, arguments: "" } },
          ],
        }),
      );
      for (const piece of chunks(JSON.stringify(call.input), 16)) {
        frames.push(chunk({ tool_calls: [{ index, function: { arguments: piece } }] }));
      }
    });
    frames.push(chunk({}, finishReason(reply)));
    if ((body as ChatBody).stream_options?.include_usage) {
      frames.push(
        sse({
          id,
          object: "chat.completion.chunk",
          created,
          model: reply.model,
          system_fingerprint: "fp_scripted",
          choices: [],
          usage: usage(reply),
        }),
      );
    }
    frames.push(sse("[DONE]"));
    return frames;
  },
  streamError(failure) {
    const error = openAiError(
      500,
      failure.message ?? "The server had an error while processing your request.",
    );
    if (failure.errorType) error.error.type = failure.errorType;
    return { frame: sse(error), status: 500 };
  },
  json: (reply) => ({
    id: randomId("chatcmpl", "-"),
    object: "chat.completion",
    created: Math.floor(Date.now() / 1000),
    model: reply.model,
    system_fingerprint: "fp_scripted",
    choices: [
      {
        index: 0,
        message: {
          role: "assistant",
          content: reply.text ?? null,
          refusal: null,
          ...(reply.toolCalls.length > 0
            ? {
                tool_calls: reply.toolCalls.map((call) => ({
                  id: call.id,
                  type: "function",
                  function: { name: call.name, arguments: JSON.stringify(call.input) },
                })),
              }
            : {}),
        },
        logprobs: null,
        finish_reason: finishReason(reply),
      },
    ],
    usage: usage(reply),
  }),
};
