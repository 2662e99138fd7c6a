/**
 * The gemini adapter with the real Gemini CLI. The scripted model server speaks no Gemini API
 * yet, so this checks what can be checked without one: the CLI accepts the arguments and the
 * settings runyard writes, reaches the model at GOOGLE_GEMINI_BASE_URL with the key, and its
 * failure comes back typed. Skips locally when the CLI cannot be installed; fails under CI.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { geminiAgent } from "../../src/agents/gemini.js";
import { superviseTurn } from "../../src/agents/supervise.js";
import type { AgentOutput } from "../../src/agents/types.js";
import { createExecutor } from "../../src/exec/create-executor.js";
import { groupIsAlive } from "../../src/exec/resources.js";
import { agentCli } from "../helpers/agent-cli.js";
import { tempDir } from "../helpers/cli.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

const pkg = geminiAgent.package!;
const bin = agentCli("gemini", pkg.name, pkg.version, pkg.bin);

let server: ModelServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

describe.skipIf(!bin)("the gemini adapter with the real CLI", () => {
  it("starts the CLI headless with runyard's settings, sends the prompt with the key, and types its failure", async () => {
    server = await startModelServer({ conversations: [{ turns: [{ text: "not in Gemini's format" }] }] });
    const cwd = tempDir("runyard-gemini-ws-");
    const scratchDir = tempDir("runyard-gemini-scratch-");
    const groups: number[] = [];
    const launcher = createExecutor({
      baseEnv: {},
      watch: { started: (pgid) => groups.push(pgid), ended: () => {} },
    });
    const outputs: AgentOutput[] = [];
    try {
      const result = await superviseTurn(
        geminiAgent,
        {
          prompt: "-say hi",
          cwd,
          model: "gemini-2.5-pro",
          extraArgs: [],
          env: { GOOGLE_GEMINI_BASE_URL: server.url, GEMINI_API_KEY: "gemini-test-key", HOME: cwd },
          scratchDir,
        },
        bin!,
        { timeoutMs: 50_000, stallMs: 20_000 },
        { emit: (output) => outputs.push(output), launcher, signal: new AbortController().signal },
      );
      // The init line: the arguments and settings were accepted, and a session began.
      expect(outputs[0]).toEqual({ type: "session", sessionId: expect.stringMatching(/^[0-9a-f-]{36}$/) });
      expect(result.status).toBe("failed");
      expect(result.error?.code).toMatch(/^AGENT_/);
      expect(result.error?.message).toContain(
        "no route POST /v1beta/models/gemini-2.5-pro:streamGenerateContent",
      );
      const settings = JSON.parse(readFileSync(join(scratchDir, ".gemini", "settings.json"), "utf8"));
      expect(settings).toEqual({
        security: { auth: { selectedType: "gemini-api-key" } },
        privacy: { usageStatisticsEnabled: false },
      });
      const request = server.requests.find((r) => r.path.includes(":streamGenerateContent"));
      expect(request?.path).toBe("/v1beta/models/gemini-2.5-pro:streamGenerateContent");
      expect(request?.headers["x-goog-api-key"]).toBe("gemini-test-key");
      expect(JSON.stringify(request?.body)).toContain("-say hi");
      expect(groupIsAlive(groups[0]!)).toBe(false);
      expect(existsSync(join(cwd, ".gemini"))).toBe(false);
    } finally {
      launcher.close();
    }
  });
});
