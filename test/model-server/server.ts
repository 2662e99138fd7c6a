/**
 * A scripted model server for offline tests of AI coding-agent CLIs (issue 9).
 *
 * It listens on a free 127.0.0.1 port and answers in the providers' real wire formats, so the
 * real CLIs run against it unchanged: the Anthropic Messages API (anthropic.ts), the OpenAI
 * Responses API (openai-responses.ts) and Chat Completions (openai-chat.ts), `GET /v1/models`, and
 * the Gemini API (gemini.ts).
 *
 * A script is a list of conversations; a request belongs to the first conversation whose `match`
 * accepts it (no `match`: accepts all). Within a conversation the turn to answer is the number of
 * assistant turns already in the request's history (each format says how it counts them), so turn
 * 0 answers the prompt, turn 1 answers the first tool result, and so on; a CLI that retries a
 * request gets the same turn again. A turn can fail its first attempts (`failFirst`) before it
 * answers, to drive retry paths.
 *
 * Every request is recorded (`requests`) for assertions.
 */
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { recordStart } from "../cost/record.js";
import { anthropic } from "./anthropic.js";
import { gemini } from "./gemini.js";
import { openAiChat } from "./openai-chat.js";
import { openAiResponses } from "./openai-responses.js";
import type { RecordedRequest, Script } from "./script.js";
import { estimateTokens, type Reply, sendJson, type WireFormat } from "./wire.js";

export type { Conversation, Failure, RecordedRequest, Script, Turn } from "./script.js";
export { turns } from "./script.js";

export interface ModelServer {
  url: string;
  port: number;
  requests: RecordedRequest[];
  /**
   * Settles with the first request whose answer the server left stalled (`stall`, or
   * `stall-mid-stream` once its first events are written): what a stall test counts from.
   */
  stalled: Promise<RecordedRequest>;
  /** That request once the server has left it stalled; undefined before. */
  readonly stalledRequest: RecordedRequest | undefined;
  /** Replace the script (attempt counters reset). */
  setScript(script: Script): void;
  stop(): Promise<void>;
}

const formats: WireFormat[] = [anthropic, openAiResponses, openAiChat, gemini];

export async function startModelServer(script: Script): Promise<ModelServer> {
  recordStart("model server");
  let current = script;
  /** Attempts per "conversation index/turn index", for `failFirst`. */
  let attempts = new Map<string, number>();
  const requests: RecordedRequest[] = [];
  let stalledRequest: RecordedRequest | undefined;
  let resolveStalled!: (rec: RecordedRequest) => void;
  const stalled = new Promise<RecordedRequest>((resolve) => {
    resolveStalled = resolve;
  });
  const stalledAt = (rec: RecordedRequest): void => {
    stalledRequest ??= rec;
    resolveStalled(rec);
  };

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
        at: Date.now(),
      };
      requests.push(rec);
      handle(rec, res);
    });
  });

  function handle(rec: RecordedRequest, res: ServerResponse): void {
    const model = current.model ?? "scripted-model";
    for (const format of formats) {
      const direct = format.direct?.(rec, model);
      if (direct) {
        rec.outcome = rec.path.endsWith("/count_tokens") ? "count_tokens" : `direct ${rec.path}`;
        sendJson(res, direct.status, direct.body);
        return;
      }
    }
    const format = formats.find((f) => f.scripted(rec));
    if (!format) {
      rec.outcome = "not found";
      const shape = rec.path.includes("/messages") ? anthropic : openAiChat;
      sendJson(res, 404, shape.errorBody(404, `model server: no route ${rec.method} ${rec.path}`));
      return;
    }
    answer(format, rec, res);
  }

  function answer(format: WireFormat, rec: RecordedRequest, res: ServerResponse): void {
    const ti = format.turnIndex(rec.body);
    const ci = current.conversations.findIndex((c) => !c.match || c.match(rec));
    const held = typeof ti === "number" ? current.conversations[ci]?.turns[ti]?.after : undefined;
    if (held) {
      void held.then(() => answerNow(format, rec, res));
      return;
    }
    answerNow(format, rec, res);
  }

  function answerNow(format: WireFormat, rec: RecordedRequest, res: ServerResponse): void {
    const body = rec.body;
    const ti = format.turnIndex(body);
    if (typeof ti === "string") {
      rec.outcome = "bad request";
      sendJson(res, 400, format.errorBody(400, ti));
      return;
    }
    const ci = current.conversations.findIndex((c) => !c.match || c.match(rec));
    const conv = current.conversations[ci];
    if (!conv) {
      rec.outcome = "no conversation matched";
      sendJson(
        res,
        500,
        format.errorBody(500, "model server: no scripted conversation matches this request"),
      );
      return;
    }
    const turn = conv.turns[ti];
    if (!turn) {
      rec.outcome = `conversation ${ci}: script exhausted at turn ${ti}`;
      sendJson(
        res,
        500,
        format.errorBody(500, `model server: script exhausted (conversation ${ci}, turn ${ti})`),
      );
      return;
    }
    const key = `${ci}/${ti}`;
    const attempt = attempts.get(key) ?? 0;
    attempts.set(key, attempt + 1);
    const failure = turn.fail ?? turn.failFirst?.[attempt];
    rec.outcome = `conversation ${ci} turn ${ti} attempt ${attempt}${failure ? ` failed: ${failure.kind}` : ""}`;

    const toolCalls = (turn.toolCalls ?? []).map((c) => ({
      id: c.id ?? format.callId(),
      name: c.name,
      input: c.input,
    }));
    const reply: Reply = {
      model: format.model(body, rec) ?? current.model ?? "scripted-model",
      ...(turn.text !== undefined ? { text: turn.text } : {}),
      toolCalls,
      usage: {
        input_tokens: turn.usage?.input_tokens ?? estimateTokens(rec.rawBody),
        output_tokens:
          turn.usage?.output_tokens ??
          estimateTokens((turn.text ?? "") + toolCalls.map((c) => JSON.stringify(c.input)).join("")),
      },
    };

    if (failure?.kind === "status") {
      const headers: Record<string, string> = {};
      if (failure.retryAfterSecs !== undefined) headers["retry-after"] = String(failure.retryAfterSecs);
      if (failure.shouldRetry !== undefined) headers["x-should-retry"] = String(failure.shouldRetry);
      const message = failure.message ?? `model server: scripted ${failure.status}`;
      sendJson(res, failure.status, format.errorBody(failure.status, message), headers);
      return;
    }
    if (failure?.kind === "stall") {
      stalledAt(rec);
      return; // never answer; stop() destroys the socket
    }

    if (!format.streaming(body, rec)) {
      if (failure?.kind === "stream-error") {
        const { status } = format.streamError(failure);
        sendJson(res, status, format.errorBody(status, failure.message ?? "Overloaded"));
        return;
      }
      if (failure?.kind === "stall-mid-stream") {
        res.writeHead(200, { "content-type": "application/json" });
        res.write('{"id":');
        stalledAt(rec);
        return;
      }
      sendJson(res, 200, format.json(reply, body));
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      connection: "keep-alive",
      "request-id": `req_${Date.now()}`,
    });
    const frames = format.events(reply, body);
    if (failure?.kind === "stall-mid-stream") {
      for (const f of frames.slice(0, failure.afterEvents ?? 1)) res.write(f);
      stalledAt(rec);
      return;
    }
    if (failure?.kind === "stream-error") {
      for (const f of frames.slice(0, failure.afterEvents ?? 1)) res.write(f);
      res.end(format.streamError(failure).frame);
      return;
    }
    for (const f of frames) res.write(f);
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
    stalled,
    get stalledRequest() {
      return stalledRequest;
    },
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
