/**
 * The built-in `openai` loop's retries of a model call follow `RUNYARD_LLM_RETRY_COUNT`, which a
 * runner passes from seed 003's `llm_retry_count`; against the scripted model server.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openaiAgent } from "../../src/agents/openai.js";
import type { AgentTurnEnd } from "../../src/agents/types.js";
import { SpawnLauncher } from "../../src/exec/spawn-launcher.js";
import { type ModelServer, startModelServer, turns } from "../model-server/server.js";

let server: ModelServer | undefined;
let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "runyard-openai-retries-"));
  execFileSync("git", ["init", "-q", join(dir, "repo")]);
});
afterEach(async () => {
  await server?.stop();
  server = undefined;
  rmSync(dir, { recursive: true, force: true });
});

/** One turn against a model that is always rate-limited (retry-after 0: no waiting). */
async function rateLimitedTurn(retryCount: string): Promise<AgentTurnEnd> {
  server = await startModelServer(
    turns({ text: "never", fail: { kind: "status", status: 429, retryAfterSecs: 0 } }),
  );
  return openaiAgent.run(
    {
      prompt: "write hello.txt",
      cwd: join(dir, "repo"),
      extraArgs: [],
      env: {
        OPENAI_BASE_URL: `${server.url}/v1`,
        OPENAI_API_KEY: "sk-test-key",
        RUNYARD_AGENT_STATE_DIR: join(dir, "state"),
        RUNYARD_LLM_RETRY_COUNT: retryCount,
      },
      scratchDir: join(dir, "scratch"),
    },
    "",
    { emit: () => {}, alive: () => {}, signal: new AbortController().signal, launcher: new SpawnLauncher() },
  );
}

describe("openai agent: RUNYARD_LLM_RETRY_COUNT", () => {
  it("retries a rate-limited call that many times, then fails with AGENT_RATE_LIMIT naming the count", async () => {
    const end = await rateLimitedTurn("1");
    expect(end.error).toMatchObject({
      code: "AGENT_RATE_LIMIT",
      message: expect.stringContaining("after 1 retries"),
    });
    expect(server!.requests).toHaveLength(2);
  });

  it("with 0 does not retry at all", async () => {
    const end = await rateLimitedTurn("0");
    expect(end.error?.code).toBe("AGENT_RATE_LIMIT");
    expect(server!.requests).toHaveLength(1);
  });

  it("refuses a count that is not a whole number from 0 to 20 before calling the model", async () => {
    const end = await rateLimitedTurn("many");
    expect(end.error).toMatchObject({
      code: "AGENT_CRASHED",
      message: "RUNYARD_LLM_RETRY_COUNT needs a whole number from 0 to 20, not many",
    });
    expect(server!.requests).toHaveLength(0);
  });
});
