import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";
import { loadRunConfig } from "./run-config.js";

describe("the config of `runyard run`", () => {
  it("has the defaults and values the whole schema gives", async () => {
    const env = { RUNYARD_KILL_GRACE_MS: "250", AVTOMATIKA_URL: "http://bots:8000" };
    const full = loadConfig(env, { token: "t" });
    expect(await loadRunConfig(env, { token: "t" })).toEqual({
      killGraceMs: full.killGraceMs,
      serverUrl: full.serverUrl,
      token: full.token,
      maxWorkflowBytes: full.maxWorkflowBytes,
    });
    expect(await loadRunConfig({})).toEqual({ killGraceMs: 5000, maxWorkflowBytes: 1024 * 1024 });
  });

  it("words a bad value of its own keys as every other command does", async () => {
    for (const env of [
      { RUNYARD_KILL_GRACE_MS: "soon" },
      { RUNYARD_KILL_GRACE_MS: "1.5" },
      { RUNYARD_MAX_WORKFLOW_BYTES: "0" },
    ]) {
      const expected = problemsOf(() => loadConfig(env));
      expect(expected).toEqual([expect.stringMatching(/^RUNYARD_(KILL_GRACE_MS|MAX_WORKFLOW_BYTES): /)]);
      expect(problemsOf(await settled(loadRunConfig(env)))).toEqual(expected);
    }
  });

  it("checks every other setting the environment holds, naming the variable", async () => {
    expect(problemsOf(await settled(loadRunConfig({ RUNYARD_PORT: "eighty" })))).toEqual([
      expect.stringMatching(/^RUNYARD_PORT: /),
    ]);
    expect(await loadRunConfig({ RUNYARD_HOME: "/srv/runyard" })).toMatchObject({
      home: "/srv/runyard",
      killGraceMs: 5000,
    });
  });
});

/** What a config load refused, as the CLI prints it. */
function problemsOf(load: () => unknown): string[] {
  try {
    load();
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  throw new Error("the config was accepted");
}

/** A promise's outcome as a function to call: returns its value or throws its error. */
async function settled(promise: Promise<unknown>): Promise<() => unknown> {
  try {
    const value = await promise;
    return () => value;
  } catch (error) {
    return () => {
      throw error;
    };
  }
}
