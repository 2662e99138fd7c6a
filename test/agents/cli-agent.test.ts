/**
 * `runCliAgent` with real processes (bash scripts standing in for a CLI's output) through both
 * launchers the runner uses: plain spawn and the fork-server.
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { runCliAgent } from "../../src/agents/cli-agent.js";
import type { AgentIo, AgentOutput, CliStreamParser } from "../../src/agents/types.js";
import { createExecutor } from "../../src/exec/create-executor.js";
import { tempDir } from "../helpers/cli.js";
import { alive, until } from "../helpers/processes.js";

/** Each stdout line is an AgentOutput as JSON; `end` reports what the test asks. */
function jsonParser(endError?: { code: string; message: string }): CliStreamParser & { ended: unknown[] } {
  const ended: unknown[] = [];
  return {
    ended,
    line: (line) => [JSON.parse(line) as AgentOutput],
    end: async (exit) => {
      ended.push(exit);
      return { outputs: [], ...(endError ? { error: endError } : {}) };
    },
  };
}

describe.each(["spawn", "auto"] as const)("runCliAgent with the %s launcher", (launcherKind) => {
  const withIo = async <T>(
    run: (io: AgentIo, seen: { outputs: AgentOutput[]; alive: number }, abort: AbortController) => Promise<T>,
  ): Promise<T> => {
    const launcher = createExecutor({ baseEnv: {}, launcher: launcherKind });
    const abort = new AbortController();
    const seen = { outputs: [] as AgentOutput[], alive: 0 };
    try {
      return await run(
        {
          emit: (output) => seen.outputs.push(output),
          alive: () => {
            seen.alive += 1;
          },
          signal: abort.signal,
          launcher,
        },
        seen,
        abort,
      );
    } finally {
      launcher.close();
    }
  };
  const env = { PATH: process.env.PATH ?? "/usr/bin:/bin" };

  it("emits every output of a line that came in pieces, and succeeds on exit 0", async () => {
    await withIo(async (io, seen) => {
      const parser = jsonParser();
      const script = `printf '{"type":"message","role":"assistant",'; printf '"text":"hi"}\\n'; echo '{"type":"session","sessionId":"s1"}'`;
      const end = await runCliAgent({ argv: ["bash", "-c", script], env, cwd: tempDir(), parser, io });
      expect(end).toMatchObject({ status: "success", exitCode: 0 });
      expect(seen.outputs).toEqual([
        { type: "message", role: "assistant", text: "hi" },
        { type: "session", sessionId: "s1" },
      ]);
      // Raw bytes are no sign of life: the supervisor counts the outputs a user sees (supervise.ts).
      expect(seen.alive).toBe(0);
      expect(parser.ended).toEqual([{ exitCode: 0, stderrTail: "" }]);
    });
  });

  it("fails with the error of a failure output, even when the CLI exits 0", async () => {
    await withIo(async (io) => {
      const line = JSON.stringify({ type: "failure", error: { code: "AGENT_AUTH", message: "bad key" } });
      const end = await runCliAgent({
        argv: ["bash", "-c", `echo '${line}'`],
        env,
        cwd: tempDir(),
        parser: jsonParser(),
        io,
      });
      expect(end).toMatchObject({ status: "failed", error: { code: "AGENT_AUTH", message: "bad key" } });
    });
  });

  it("fails a non-zero exit with AGENT_CRASHED and the tail of stderr, unless the parser knows better", async () => {
    await withIo(async (io) => {
      const argv = ["bash", "-c", "echo 'it broke' >&2; exit 3"];
      const crashed = await runCliAgent({ argv, env, cwd: tempDir(), parser: jsonParser(), io });
      expect(crashed).toMatchObject({
        status: "failed",
        exitCode: 3,
        error: { code: "AGENT_CRASHED", message: "exit code 3: it broke" },
      });
      const known = await runCliAgent({
        argv,
        env,
        cwd: tempDir(),
        parser: jsonParser({ code: "AGENT_RATE_LIMIT", message: "429" }),
        io,
      });
      expect(known).toMatchObject({ status: "failed", error: { code: "AGENT_RATE_LIMIT" } });
    });
  });

  it("fails with AGENT_CRASHED when the parser throws, without harming the runner", async () => {
    await withIo(async (io) => {
      const end = await runCliAgent({
        argv: ["bash", "-c", "echo 'not json'"],
        env,
        cwd: tempDir(),
        parser: jsonParser(),
        io,
      });
      expect(end).toMatchObject({ status: "failed", error: { code: "AGENT_CRASHED" } });
      expect(end.error?.message).toMatch(/cannot read the output of bash/);
    });
  });

  it("reports a missing CLI as AGENT_NOT_INSTALLED with the install command as hint", async () => {
    await withIo(async (io) => {
      const end = await runCliAgent({
        argv: ["/nowhere/bin/claude", "-p", "hi"],
        agent: "claude_code",
        env,
        cwd: tempDir(),
        parser: jsonParser(),
        io,
      });
      expect(end).toMatchObject({
        status: "failed",
        exitCode: null,
        error: {
          code: "AGENT_NOT_INSTALLED",
          hint: expect.stringContaining("runyard agents install claude_code"),
        },
      });
    });
  });

  it("passes the turn's env over the runner's, without runyard's own credentials", async () => {
    process.env.RUNYARD_TOKEN = "runner-token-must-not-leak";
    try {
      await withIo(async (io, seen) => {
        const script = `printf '{"type":"message","role":"assistant","text":"%s|%s"}\\n' "$RUNYARD_TOKEN" "$AGENT_KEY"`;
        const end = await runCliAgent({
          argv: ["bash", "-c", script],
          env: { ...env, AGENT_KEY: "k1" },
          cwd: tempDir(),
          parser: jsonParser(),
          io,
        });
        expect(end.status).toBe("success");
        expect(seen.outputs).toEqual([{ type: "message", role: "assistant", text: "|k1" }]);
      });
    } finally {
      delete process.env.RUNYARD_TOKEN;
    }
  });

  it("stops the whole process group on abort and ends as canceled", async () => {
    await withIo(async (io, seen, abort) => {
      const dir = tempDir();
      // The CLI leaves a child of its own; both must be gone once the turn returns.
      const script = `sleep 300 & echo $! > ${dir}/child; echo '{"type":"session","sessionId":"s"}'; wait`;
      const turn = runCliAgent({ argv: ["bash", "-c", script], env, cwd: dir, parser: jsonParser(), io });
      await until("the CLI printed its first line", () => seen.outputs.length === 1);
      const child = Number(readFileSync(`${dir}/child`, "utf8"));
      abort.abort();
      const end = await turn;
      expect(end.status).toBe("canceled");
      expect(alive(child)).toBe(false);
    });
  });
});
