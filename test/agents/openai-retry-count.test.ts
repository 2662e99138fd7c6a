/**
 * The built-in `openai` loop's retries of a model call follow `RUNYARD_LLM_RETRY_COUNT`, which a
 * runner passes from seed 003's `llm_retry_count`; against the scripted model server.
 */
import { describe, expect, it } from "vitest";
import { openaiAgent } from "../../src/agents/openai.js";
import type { AgentTurnEnd } from "../../src/agents/types.js";
import { agentTestBed, openaiInvocation } from "../helpers/agent-turn.js";
import { startModelServer, turns } from "../model-server/server.js";

const bed = agentTestBed({ repoPrefix: "runyard-openai-retries-", launcher: "spawn" });

/** One turn against a model that is always rate-limited (retry-after 0: no waiting). */
async function rateLimitedTurn(retryCount: string): Promise<AgentTurnEnd> {
  bed.server = await startModelServer(
    turns({ text: "never", fail: { kind: "status", status: 429, retryAfterSecs: 0 } }),
  );
  const invocation = openaiInvocation(bed, {
    prompt: "write hello.txt",
    env: { RUNYARD_LLM_RETRY_COUNT: retryCount },
  });
  return (await bed.run(openaiAgent, invocation, "")).end;
}

describe("openai agent: RUNYARD_LLM_RETRY_COUNT", () => {
  it("retries a rate-limited call that many times, then fails with AGENT_RATE_LIMIT naming the count", async () => {
    const end = await rateLimitedTurn("1");
    expect(end.error).toMatchObject({
      code: "AGENT_RATE_LIMIT",
      message: expect.stringContaining("after 1 retries"),
    });
    expect(bed.server!.requests).toHaveLength(2);
  });

  it("with 0 does not retry at all", async () => {
    const end = await rateLimitedTurn("0");
    expect(end.error?.code).toBe("AGENT_RATE_LIMIT");
    expect(bed.server!.requests).toHaveLength(1);
  });

  it("refuses a count that is not a whole number from 0 to 20 before calling the model", async () => {
    const end = await rateLimitedTurn("many");
    expect(end.error).toMatchObject({
      code: "AGENT_CRASHED",
      message: "RUNYARD_LLM_RETRY_COUNT needs a whole number from 0 to 20, not many",
    });
    expect(bed.server!.requests).toHaveLength(0);
  });
});
