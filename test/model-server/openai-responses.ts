/**
 * The OpenAI Responses API (Codex): `POST /v1/responses` (also without `/v1`), streaming and not.
 *
 * A request carries the whole history as `input` items (Codex sends `store: false` and no
 * `previous_response_id`). One answer can be several output items (a `reasoning`, a `message`,
 * `function_call`s), so the turn is the number of **runs of consecutive assistant items** in
 * `input`: any user / developer message or tool output between them starts a new run. A string
 * `input` is turn 0.
 *
 * A scripted tool call becomes a `function_call` item (`arguments` = JSON of `input`), unless the
 * request declares that tool as `type: "custom"` (a freeform tool such as Codex's `apply_patch` in
 * some versions): then it is a `custom_tool_call` whose `input` is the script's `input.input` string.
 */
import { modelList, openAiError, openAiPath } from "./openai-errors.js";
import { chunks, type Reply, randomId, sse, type WireFormat } from "./wire.js";

interface ResponsesBody {
  model?: string;
  stream?: boolean;
  input?: string | Array<{ type?: string; role?: string }>;
  tools?: Array<{ type?: string; name?: string }>;
}

const ASSISTANT_ITEMS = new Set([
  "function_call",
  "custom_tool_call",
  "local_shell_call",
  "reasoning",
  "web_search_call",
]);

function assistantItem(item: { type?: string; role?: string }): boolean {
  return item.role === "assistant" || ASSISTANT_ITEMS.has(item.type ?? "");
}

type Item = Record<string, unknown> & { id: string; type: string };

function outputItems(reply: Reply, body: ResponsesBody): Item[] {
  const items: Item[] = [];
  if (reply.text !== undefined || reply.toolCalls.length === 0) {
    items.push({
      id: randomId("msg"),
      type: "message",
      status: "completed",
      role: "assistant",
      content: [{ type: "output_text", text: reply.text ?? "", annotations: [] }],
    });
  }
  for (const call of reply.toolCalls) {
    const custom = body.tools?.some((t) => t.name === call.name && t.type === "custom");
    items.push(
      custom
        ? {
            id: randomId("ctc"),
            type: "custom_tool_call",
            status: "completed",
            call_id: call.id,
            name: call.name,
            input: String(call.input.input ?? ""),
          }
        : {
            id: randomId("fc"),
            type: "function_call",
            status: "completed",
            call_id: call.id,
            ...namespaced(body.tools, call.name),
            arguments: JSON.stringify(call.input),
          },
    );
  }
  return items;
}

/**
 * A call's `name`, and its `namespace` when the request declares the tool inside a `namespace`
 * tool (Codex offers an MCP server's tools so: `{type: "namespace", name: "mcp__SERVER", tools}`):
 * the script names it `NAMESPACE__TOOL` (`mcp__marker__mark`), the item carries both parts.
 */
function namespaced(tools: unknown, name: string): { name: string; namespace?: string } {
  if (!Array.isArray(tools)) return { name };
  for (const tool of tools as Array<{ type?: string; name?: string; tools?: Array<{ name?: string }> }>) {
    if (tool.type !== "namespace" || !tool.name) continue;
    const member = tool.tools?.find((inner) => `${tool.name}__${inner.name}` === name);
    if (member?.name) return { name: member.name, namespace: tool.name };
  }
  return { name };
}

function response(reply: Reply, id: string, status: string, output: Item[], createdAt: number) {
  return {
    id,
    object: "response",
    created_at: createdAt,
    status,
    error: null,
    incomplete_details: null,
    model: reply.model,
    output,
    parallel_tool_calls: true,
    usage:
      status === "completed"
        ? {
            input_tokens: reply.usage.input_tokens,
            input_tokens_details: { cached_tokens: 0 },
            output_tokens: reply.usage.output_tokens,
            output_tokens_details: { reasoning_tokens: 0 },
            total_tokens: reply.usage.input_tokens + reply.usage.output_tokens,
          }
        : null,
  };
}

export const openAiResponses: WireFormat = {
  scripted: (rec) => rec.method === "POST" && openAiPath(rec.path) === "/responses",
  direct(rec, model) {
    if (rec.method === "GET" && openAiPath(rec.path) === "/models")
      return { status: 200, body: modelList(model) };
    return undefined;
  },
  turnIndex(body) {
    const input = (body as ResponsesBody | undefined)?.input;
    if (typeof input === "string") return 0;
    if (!Array.isArray(input)) return "input: field required";
    let runs = 0;
    let inRun = false;
    for (const item of input) {
      const assistant = assistantItem(item);
      if (assistant && !inRun) runs++;
      inRun = assistant;
    }
    return runs;
  },
  streaming: (body) => (body as ResponsesBody).stream === true,
  model: (body) => (body as ResponsesBody).model,
  callId: () => randomId("call"),
  errorBody: openAiError,
  events(reply, body) {
    const id = randomId("resp");
    const createdAt = Math.floor(Date.now() / 1000);
    let seq = 0;
    const frame = (type: string, data: Record<string, unknown>) =>
      sse({ type, sequence_number: seq++, ...data }, type);
    const items = outputItems(reply, body as ResponsesBody);
    const frames = [
      frame("response.created", { response: response(reply, id, "in_progress", [], createdAt) }),
      frame("response.in_progress", { response: response(reply, id, "in_progress", [], createdAt) }),
    ];
    items.forEach((item, output_index) => {
      if (item.type === "message") {
        const text = reply.text ?? "";
        const part = { type: "output_text", text: "", annotations: [] };
        frames.push(
          frame("response.output_item.added", {
            output_index,
            item: { ...item, status: "in_progress", content: [] },
          }),
          frame("response.content_part.added", { item_id: item.id, output_index, content_index: 0, part }),
        );
        for (const delta of chunks(text, 16)) {
          frames.push(
            frame("response.output_text.delta", {
              item_id: item.id,
              output_index,
              content_index: 0,
              delta,
              logprobs: [],
            }),
          );
        }
        frames.push(
          frame("response.output_text.done", {
            item_id: item.id,
            output_index,
            content_index: 0,
            text,
            logprobs: [],
          }),
          frame("response.content_part.done", {
            item_id: item.id,
            output_index,
            content_index: 0,
            part: { ...part, text },
          }),
        );
      } else if (item.type === "function_call") {
        const args = item.arguments as string;
        frames.push(
          frame("response.output_item.added", {
            output_index,
            item: { ...item, status: "in_progress", arguments: "" },
          }),
        );
        for (const delta of chunks(args, 16)) {
          frames.push(
            frame("response.function_call_arguments.delta", { item_id: item.id, output_index, delta }),
          );
        }
        frames.push(
          frame("response.function_call_arguments.done", { item_id: item.id, output_index, arguments: args }),
        );
      } else {
        const input = item.input as string;
        frames.push(
          frame("response.output_item.added", {
            output_index,
            item: { ...item, status: "in_progress", input: "" },
          }),
        );
        for (const delta of chunks(input, 16)) {
          frames.push(
            frame("response.custom_tool_call_input.delta", { item_id: item.id, output_index, delta }),
          );
        }
        frames.push(frame("response.custom_tool_call_input.done", { item_id: item.id, output_index, input }));
      }
      frames.push(frame("response.output_item.done", { output_index, item }));
    });
    frames.push(
      frame("response.completed", { response: response(reply, id, "completed", items, createdAt) }),
    );
    return frames;
  },
  streamError(failure) {
    const code = failure.errorType ?? "server_error";
    const message = failure.message ?? "The server had an error while processing your request.";
    const data = {
      type: "response.failed",
      sequence_number: 0,
      response: {
        id: randomId("resp"),
        object: "response",
        status: "failed",
        error: { code, message },
        output: [],
        usage: null,
      },
    };
    return { frame: sse(data, "response.failed"), status: 500 };
  },
  json: (reply, body) =>
    response(
      reply,
      randomId("resp"),
      "completed",
      outputItems(reply, body as ResponsesBody),
      Math.floor(Date.now() / 1000),
    ),
};
