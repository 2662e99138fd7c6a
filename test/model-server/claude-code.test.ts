/**
 * The real Claude Code CLI against the scripted model server. Skipped unless RUNYARD_CLAUDE_BIN names
 * a `claude` binary (see README.md in this folder for how to install one); set
 * RUNYARD_MODEL_SERVER_LOG=FILE to dump every request the CLI made.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { type ModelServer, type Script, startModelServer, type Turn } from "./server.js";

const bin = process.env.RUNYARD_CLAUDE_BIN;
let server: ModelServer | undefined;
afterEach(async () => {
  const log = process.env.RUNYARD_MODEL_SERVER_LOG;
  if (log && server) {
    writeFileSync(
      log,
      `${JSON.stringify(
        server.requests.map((r) => ({ ...r, rawBody: undefined })),
        null,
        2,
      )}\n`,
    );
  }
  await server?.stop();
  server = undefined;
});

function runClaude(
  prompt: string,
  cwd: string,
  extraEnv: Record<string, string> = {},
  killAfterMs = 50_000,
): Promise<{ code: number | null; killed: boolean; lines: Array<Record<string, unknown>>; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      bin!,
      ["-p", prompt, "--output-format", "stream-json", "--verbose", "--dangerously-skip-permissions"],
      {
        cwd,
        stdio: ["ignore", "pipe", "pipe"],
        env: {
          PATH: process.env.PATH ?? "",
          HOME: cwd,
          IS_SANDBOX: "1",
          ANTHROPIC_BASE_URL: server!.url,
          ANTHROPIC_API_KEY: "test",
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
          DISABLE_AUTOUPDATER: "1",
          ...extraEnv,
        },
      },
    );
    let out = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    let killed = false;
    const timer = setTimeout(() => {
      killed = true;
      child.kill("SIGKILL");
    }, killAfterMs);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const log = process.env.RUNYARD_MODEL_SERVER_LOG;
      if (log) writeFileSync(`${log}.stdout.jsonl`, out);
      const lines = out
        .split("\n")
        .filter((l) => l.trim())
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return { unparsed: l };
          }
        });
      resolve({ code, killed, lines, stderr });
    });
  });
}

/** Main-conversation requests carry tools; side calls (titles, topic checks) do not. */
const withTools = (r: { body: unknown }) => Array.isArray((r.body as { tools?: unknown })?.tools);

describe.skipIf(!bin)("real Claude Code CLI against the scripted model server", () => {
  it("answers a prompt with scripted text", async () => {
    const script: Script = {
      conversations: [
        { match: withTools, turns: [{ text: "hi from the script" }] },
        { turns: [{ text: "ok" }] },
      ],
    };
    server = await startModelServer(script);
    const cwd = mkdtempSync(join(tmpdir(), "runyard-cc-"));
    const { code, lines, stderr } = await runClaude("say hi", cwd);
    const result = lines.find((l) => l.type === "result");
    expect({ code, result, stderr }).toMatchObject({
      code: 0,
      result: { is_error: false, result: "hi from the script" },
    });
    expect(server.requests.some((r) => r.path === "/v1/messages")).toBe(true);
  });

  it("runs a scripted tool call (Write) and finishes on the next turn", async () => {
    const cwd = mkdtempSync(join(tmpdir(), "runyard-cc-"));
    const file = join(cwd, "hello.txt");
    server = await startModelServer({
      conversations: [
        {
          match: withTools,
          turns: [
            {
              text: "Writing.",
              toolCalls: [{ name: "Write", input: { file_path: file, content: "hello\n" } }],
            },
            { text: "done" },
          ],
        },
        { turns: [{ text: "ok" }] },
      ],
    });
    const { code, lines, stderr } = await runClaude("write hello.txt", cwd);
    const result = lines.find((l) => l.type === "result");
    expect({ code, result, stderr }).toMatchObject({ code: 0, result: { is_error: false, result: "done" } });
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(file, "utf8")).toBe("hello\n");
    const last = server.requests.filter(withTools).at(-1)!.body as {
      messages: Array<{ role: string; content: unknown }>;
    };
    expect(JSON.stringify(last.messages.at(-1))).toContain("tool_result");
  });
});

describe.skipIf(!bin)("real Claude Code CLI: scripted failures", () => {
  const main = (turn: Turn): Script => ({
    conversations: [{ match: withTools, turns: [turn] }, { turns: [{ text: "ok" }] }],
  });
  const cwd = () => mkdtempSync(join(tmpdir(), "runyard-cc-"));

  it("401 with x-should-retry: false: one attempt, exit 1, is_error with api_error_status 401", async () => {
    server = await startModelServer(
      main({ fail: { kind: "status", status: 401, message: "invalid x-api-key", shouldRetry: false } }),
    );
    const { code, lines } = await runClaude("say hi", cwd(), { CLAUDE_CODE_MAX_RETRIES: "2" });
    const result = lines.find((l) => l.type === "result");
    // subtype stays "success" on errors: is_error is what tells.
    expect({ code, result }).toMatchObject({
      code: 1,
      result: { subtype: "success", is_error: true, api_error_status: 401 },
    });
    expect(server.requests.filter(withTools)).toHaveLength(1);
  });

  it("401 without x-should-retry: retried CLAUDE_CODE_MAX_RETRIES times", async () => {
    server = await startModelServer(main({ fail: { kind: "status", status: 401 } }));
    const { code, lines } = await runClaude("say hi", cwd(), { CLAUDE_CODE_MAX_RETRIES: "2" });
    expect({ code, result: lines.find((l) => l.type === "result") }).toMatchObject({
      code: 1,
      result: { is_error: true, api_error_status: 401 },
    });
    expect(server.requests.filter(withTools)).toHaveLength(3);
  });

  it("429 with retry-after: 1, twice, then answers", async () => {
    server = await startModelServer(
      main({
        text: "after the rate limit",
        failFirst: [
          { kind: "status", status: 429, retryAfterSecs: 1 },
          { kind: "status", status: 429, retryAfterSecs: 1 },
        ],
      }),
    );
    const t0 = Date.now();
    const { code, lines } = await runClaude("say hi", cwd());
    expect({ code, result: lines.find((l) => l.type === "result") }).toMatchObject({
      code: 0,
      result: { is_error: false, result: "after the rate limit" },
    });
    expect(server.requests.filter(withTools)).toHaveLength(3);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(2000); // it honoured retry-after
  });

  it("a stall before headers: API_TIMEOUT_MS per attempt, then 'Request timed out' with is_error", async () => {
    server = await startModelServer(main({ fail: { kind: "stall" } }));
    const { code, lines } = await runClaude("say hi", cwd(), {
      API_TIMEOUT_MS: "2000",
      CLAUDE_CODE_MAX_RETRIES: "1",
    });
    expect({ code, result: lines.find((l) => l.type === "result") }).toMatchObject({
      code: 1,
      result: { is_error: true, result: "Request timed out" },
    });
    expect(server.requests.filter(withTools)).toHaveLength(2);
  });

  it("an in-stream overloaded_error after message_start: retried, then answers", async () => {
    server = await startModelServer(
      main({ text: "after the error", failFirst: [{ kind: "stream-error", afterEvents: 1 }] }),
    );
    const { code, lines } = await runClaude("say hi", cwd(), { CLAUDE_CODE_MAX_RETRIES: "2" });
    expect({ code, result: lines.find((l) => l.type === "result") }).toMatchObject({
      code: 0,
      result: { is_error: false, result: "after the error" },
    });
    expect(server.requests.filter(withTools)).toHaveLength(2);
  });

  it("a stall mid-stream hangs it: API_TIMEOUT_MS does not apply once headers came (runyard must kill it)", async () => {
    server = await startModelServer(
      main({ text: "partial", fail: { kind: "stall-mid-stream", afterEvents: 4 } }),
    );
    const { killed, lines } = await runClaude(
      "say hi",
      cwd(),
      { API_TIMEOUT_MS: "2000", CLAUDE_CODE_MAX_RETRIES: "1" },
      10_000,
    );
    expect(killed).toBe(true);
    expect(lines.find((l) => l.type === "result")).toBeUndefined();
    expect(server.requests.filter(withTools)).toHaveLength(1);
  });
});
