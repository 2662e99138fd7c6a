import { afterAll, describe, expect, it } from "vitest";
import { createExecutor } from "../src/exec/create-executor.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox/sandbox.js";
import type { Executor } from "../src/exec/types.js";

/** What an attempt's commands start from, by executor: the host's env is the runner's. */
const probe = await probeSandbox();
if (probe.isolation !== "sandbox") throw new Error(`these tests need bubblewrap: ${probe.problem}`);

const host = {
  PATH: "/opt/tools/bin:/usr/bin:/bin",
  HOME: "/home/operator",
  LANG: "C.UTF-8",
  LC_TIME: "en_GB.UTF-8",
  TZ: "Europe/Paris",
  TERM: "xterm-256color",
  ANTHROPIC_API_KEY: "sk-ant-operator",
  AWS_SECRET_ACCESS_KEY: "aws-operator",
  HTTP_PROXY: "http://proxy.internal:3128",
  RUNYARD_TOKEN: "ryt_runner",
};
const sandboxed = createExecutor({
  baseEnv: host,
  launcher: "spawn",
  sandbox: new Sandbox({ bwrap: probe.bwrap, hide: [] }),
  passEnv: ["HTTP_PROXY"],
});
const unsandboxed = createExecutor({ baseEnv: host, launcher: "spawn", passEnv: ["HTTP_PROXY"] });
afterAll(async () => {
  await sandboxed.close();
  await unsandboxed.close();
});

async function envOf(executor: Executor, platform: boolean): Promise<Readonly<Record<string, string>>> {
  const attempt = await executor.startAttempt({
    env: { RUN_OWN: "mine" },
    limits: { killGraceMs: 1000 },
    ...(platform ? { platform: true } : {}),
  });
  if ("problem" in attempt) throw new Error(attempt.problem);
  await attempt.dispose();
  return attempt.env;
}

describe("an attempt's environment", () => {
  it("on a sandboxing executor, a member's starts from PATH, HOME, LANG, LC_*, TZ and TERM of the host, and its own variables", async () => {
    const env = await envOf(sandboxed, false);
    const { PWD: _pwd, RUNYARD_OUTPUT: _output, ...rest } = env;
    expect(rest).toEqual({
      PATH: host.PATH,
      HOME: host.HOME,
      LANG: host.LANG,
      LC_TIME: host.LC_TIME,
      TZ: host.TZ,
      TERM: host.TERM,
      RUN_OWN: "mine",
    });
  });

  it("on a sandboxing executor, a platform run's gets the passed names too, and still no credential", async () => {
    const env = await envOf(sandboxed, true);
    expect(env.HTTP_PROXY).toBe(host.HTTP_PROXY);
    expect(env.ANTHROPIC_API_KEY).toBeUndefined();
    expect(env.RUNYARD_TOKEN).toBeUndefined();
  });

  it("on an unsandboxed executor, anyone's starts from the host's whole env without runyard's credentials", async () => {
    for (const platform of [false, true]) {
      const env = await envOf(unsandboxed, platform);
      expect(env.ANTHROPIC_API_KEY).toBe(host.ANTHROPIC_API_KEY);
      expect(env.AWS_SECRET_ACCESS_KEY).toBe(host.AWS_SECRET_ACCESS_KEY);
      expect(env.RUNYARD_TOKEN).toBeUndefined();
    }
  });
});
