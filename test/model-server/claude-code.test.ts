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
import { type ModelServer, type Script, startModelServer } from "./server.js";

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
): Promise<{ code: number | null; lines: Array<Record<string, unknown>>; stderr: string }> {
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
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
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
      resolve({ code, lines, stderr });
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
