import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";
import { runEnvBase, withoutCredentials } from "./config-env.js";

describe("config", () => {
  it("reads RUNYARD_* variables", () => {
    const config = loadConfig({ RUNYARD_GROUP: "gpu", RUNYARD_CAPACITY: "4", RUNYARD_LABELS: "a, b" });
    expect(config.group).toBe("gpu");
    expect(config.capacity).toBe(4);
    expect(config.labels).toEqual(["a", "b"]);
  });

  it("reads RUNYARD_SHARED as a yes or no, off unless set, and names it when it is neither", () => {
    expect(loadConfig({}).shared).toBe(false);
    expect(loadConfig({ RUNYARD_SHARED: "1" }).shared).toBe(true);
    expect(loadConfig({ RUNYARD_SHARED: "true" }).shared).toBe(true);
    expect(loadConfig({ RUNYARD_SHARED: "0" }).shared).toBe(false);
    expect(loadConfig({ RUNYARD_SHARED: "0" }, { shared: true }).shared).toBe(true);
    expect(() => loadConfig({ RUNYARD_SHARED: "maybe" })).toThrowError(/RUNYARD_SHARED: must be 1 or 0/);
  });

  it("caps a runner's spool at 10 GiB of output and 1 GiB of free disk unless told, and names a bad cap", () => {
    expect(loadConfig({})).toMatchObject({ spoolMaxBytes: 10 * 1024 ** 3, spoolMinFreeBytes: 1024 ** 3 });
    expect(
      loadConfig({ RUNYARD_SPOOL_MAX_BYTES: "200000", RUNYARD_SPOOL_MIN_FREE_BYTES: "0" }),
    ).toMatchObject({ spoolMaxBytes: 200_000, spoolMinFreeBytes: 0 });
    expect(() => loadConfig({ RUNYARD_SPOOL_MAX_BYTES: "lots" })).toThrowError(/RUNYARD_SPOOL_MAX_BYTES/);
  });

  it("sweeps for lost fleet messages every 2 s unless RUNYARD_REPLICA_SWEEP_MS says otherwise, and names a bad value with the fix", () => {
    expect(loadConfig({}).replicaSweepMs).toBe(2000);
    expect(loadConfig({ RUNYARD_REPLICA_SWEEP_MS: "60000" }).replicaSweepMs).toBe(60_000);
    expect(loadConfig({ RUNYARD_REPLICA_SWEEP_MS: "200" }, { replicaSweepMs: 500 }).replicaSweepMs).toBe(500);
    for (const [value, problem] of [
      ["soon", /RUNYARD_REPLICA_SWEEP_MS: must be a whole number of milliseconds, like 2000 \(the default\)/],
      ["2.5", /RUNYARD_REPLICA_SWEEP_MS: must be a whole number of milliseconds/],
      ["0", /RUNYARD_REPLICA_SWEEP_MS: must be at least 100 \(ms\): each sweep reads the database/],
      ["-2000", /RUNYARD_REPLICA_SWEEP_MS: must be at least 100/],
      ["86400000", /RUNYARD_REPLICA_SWEEP_MS: must be at most 3600000 \(an hour\)/],
    ] as const)
      expect(() => loadConfig({ RUNYARD_REPLICA_SWEEP_MS: value }), value).toThrowError(problem);
  });

  it("accepts the ADOS runner's ADOS_* names as aliases", () => {
    const config = loadConfig({
      ADOS_API_URL: "http://127.0.0.1:8088",
      ADOS_TOKEN: "t",
      ADOS_RUNNER_ID: "runner-001",
      WORKSPACE_DIR: "/workspace",
      ADOS_MODE: "issue",
      ADOS_GROUP: "frontend-runners",
      ADOS_CPUS: "4",
      ADOS_MEMORY: "8GB",
      ADOS_HOSTNAME: "server-01",
      ADOS_TENANT_ID: "acme",
    });
    expect(config).toMatchObject({
      serverUrl: "http://127.0.0.1:8088",
      token: "t",
      runnerId: "runner-001",
      workspaceDir: "/workspace",
      mode: "issue",
      group: "frontend-runners",
      cpus: 4,
      memory: "8GB",
      hostname: "server-01",
      tenantId: "acme",
    });
  });

  it("accepts the avtomatika-bot CLI's AVTOMATIKA_URL and AVTOMATIKA_TOKEN after runyard's own names; steps never inherit the token", () => {
    expect(loadConfig({ AVTOMATIKA_URL: "http://bots:8000", AVTOMATIKA_TOKEN: "t1" })).toMatchObject({
      serverUrl: "http://bots:8000",
      token: "t1",
    });
    expect(loadConfig({ RUNYARD_TOKEN: "mine", AVTOMATIKA_TOKEN: "t1" }).token).toBe("mine");
    expect(withoutCredentials({ AVTOMATIKA_TOKEN: "t1", AVTOMATIKA_URL: "u" })).toEqual({
      AVTOMATIKA_URL: "u",
    });
  });

  it("prefers RUNYARD_* over ADOS_* and flags over both", () => {
    expect(loadConfig({ RUNYARD_GROUP: "a", ADOS_GROUP: "b" }).group).toBe("a");
    expect(loadConfig({ RUNYARD_GROUP: "a" }, { group: "c" }).group).toBe("c");
  });

  it("names the variable that holds a bad value", () => {
    expect(() => loadConfig({ ADOS_MODE: "sometimes" })).toThrowError(ConfigError);
    expect(() => loadConfig({ ADOS_MODE: "sometimes" })).toThrowError(/ADOS_MODE/);
  });

  it("reads RUNYARD_STEP_PASS_ENV as names, and refuses one of runyard's own credentials", () => {
    expect(loadConfig({ RUNYARD_STEP_PASS_ENV: "HTTP_PROXY, NPM_CONFIG_REGISTRY" }).stepPassEnv).toEqual([
      "HTTP_PROXY",
      "NPM_CONFIG_REGISTRY",
    ]);
    expect(() => loadConfig({ RUNYARD_STEP_PASS_ENV: "RUNYARD_TOKEN" })).toThrowError(
      /runyard's own credentials/,
    );
    expect(() => loadConfig({ RUNYARD_STEP_PASS_ENV: "A=B" })).toThrowError(
      /not an environment variable name/,
    );
  });

  it("starts a sandboxed run's environment from the allowlist and the passed names only", () => {
    const host = {
      PATH: "/opt/bin:/usr/bin",
      LANG: "C.UTF-8",
      LC_TIME: "en_GB.UTF-8",
      TERM: "xterm",
      ANTHROPIC_API_KEY: "sk-ant",
      HTTP_PROXY: "http://proxy:3128",
      RUNYARD_TOKEN: "ryt",
    };
    expect(runEnvBase(host, [], "/home/op")).toEqual({
      PATH: "/opt/bin:/usr/bin",
      HOME: "/home/op",
      LANG: "C.UTF-8",
      LC_TIME: "en_GB.UTF-8",
      TERM: "xterm",
    });
    expect(runEnvBase(host, ["HTTP_PROXY", "RUNYARD_TOKEN"], "/home/op").HTTP_PROXY).toBe(
      "http://proxy:3128",
    );
    expect(runEnvBase(host, ["RUNYARD_TOKEN"], "/home/op").RUNYARD_TOKEN).toBeUndefined();
    expect(runEnvBase({}, [], "/home/op").PATH).toContain("/usr/bin");
  });
});
