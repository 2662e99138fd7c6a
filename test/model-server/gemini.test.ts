import { afterEach, describe, expect, it } from "vitest";
import { type ModelServer, startModelServer, turns } from "./server.js";

let server: ModelServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

// biome-ignore lint/suspicious/noExplicitAny: wire JSON, checked by the assertions
type Json = any;

async function post(path: string, body: unknown): Promise<Response> {
  return fetch(`${server!.url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", "x-goog-api-key": "test" },
    body: JSON.stringify(body),
  });
}

function chunksOf(text: string): Json[] {
  expect(text.endsWith("\n\n")).toBe(true);
  return text
    .trim()
    .split("\n\n")
    .map((frame) => JSON.parse(frame.replace(/^data: /, "")));
}

const user = (text: string) => ({ role: "user", parts: [{ text }] });

describe("scripted model server: Gemini API", () => {
  it("streams text chunks and a function call that rebuild the turn, usage on the last chunk", async () => {
    server = await startModelServer(
      turns({
        text: "Writing the file now, one moment.",
        toolCalls: [{ name: "write_file", input: { file_path: "a.txt", content: "hi" } }],
        usage: { input_tokens: 40, output_tokens: 12 },
      }),
    );
    const res = await post("/v1beta/models/gemini-2.5-pro:streamGenerateContent?alt=sse", {
      contents: [user("write a.txt")],
    });
    expect(res.headers.get("content-type")).toContain("text/event-stream");
    const list = chunksOf(await res.text());
    const parts = list.flatMap((c) => c.candidates[0].content.parts);
    expect(parts.map((p: Json) => p.text ?? "").join("")).toBe("Writing the file now, one moment.");
    expect(parts.filter((p: Json) => p.functionCall).map((p: Json) => p.functionCall)).toEqual([
      { id: expect.any(String), name: "write_file", args: { file_path: "a.txt", content: "hi" } },
    ]);
    const last = list.at(-1);
    expect(last.candidates[0].finishReason).toBe("STOP");
    expect(last.usageMetadata).toEqual({
      promptTokenCount: 40,
      candidatesTokenCount: 12,
      totalTokenCount: 52,
    });
    expect(last.modelVersion).toBe("gemini-2.5-pro");
  });

  it("answers the function response with the next turn, non-streaming, counting model contents", async () => {
    server = await startModelServer(turns({ toolCalls: [{ name: "ls", input: {} }] }, { text: "done" }));
    const first: Json = await (
      await post("/v1beta/models/m:generateContent", { contents: [user("go")] })
    ).json();
    const model = first.candidates[0].content;
    expect(model.parts[0].functionCall.name).toBe("ls");
    const second: Json = await (
      await post("/v1beta/models/m:generateContent", {
        contents: [
          user("go"),
          model,
          { role: "user", parts: [{ functionResponse: { name: "ls", response: { output: "a.txt" } } }] },
        ],
      })
    ).json();
    expect(second.candidates[0].content.parts).toEqual([{ text: "done" }]);
    expect(server.requests.map((r) => r.outcome)).toEqual([
      "conversation 0 turn 0 attempt 0",
      "conversation 0 turn 1 attempt 0",
    ]);
  });

  it("fails in Google's error format, counts tokens and lists the model", async () => {
    server = await startModelServer({
      model: "gemini-scripted",
      conversations: [
        { turns: [{ text: "ok", failFirst: [{ kind: "status", status: 429, retryAfterSecs: 3 }] }] },
      ],
    });
    const limited = await post("/v1beta/models/m:streamGenerateContent?alt=sse", { contents: [user("hi")] });
    expect(limited.status).toBe(429);
    expect(limited.headers.get("retry-after")).toBe("3");
    expect(await limited.json()).toEqual({
      error: { code: 429, message: "model server: scripted 429", status: "RESOURCE_EXHAUSTED" },
    });
    const counted: Json = await (
      await post("/v1beta/models/m:countTokens", { contents: [user("hi")] })
    ).json();
    expect(counted.totalTokens).toBeGreaterThan(0);
    const models: Json = await (await fetch(`${server.url}/v1beta/models`)).json();
    expect(models.models[0].name).toBe("models/gemini-scripted");
  });
});
