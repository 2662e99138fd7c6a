import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";
import { groupForRepo, readConfigFile } from "./config-file.js";

function file(text: string): string {
  const path = join(tmpdir(), `runyard-config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

describe("config file", () => {
  it("reads seed 000's repos routing and runner settings", () => {
    const loaded = readConfigFile(
      file(
        "group: backend-runners\nlabels: [docker, linux]\ncapacity: 3\nrepos:\n  - name: frontend-app\n    work_runner_group: frontend-runners\n  - name: backend-api\n    work_runner_group: backend-runners\n",
      ),
    );
    expect(loaded.overrides).toMatchObject({ group: "backend-runners", labels: "docker,linux", capacity: 3 });
    expect(groupForRepo(loaded.repos, "frontend-app")).toBe("frontend-runners");
    expect(groupForRepo(loaded.repos, "git@github.com:acme/backend-api.git")).toBe("backend-runners");
    expect(groupForRepo(loaded.repos, "unknown")).toBeUndefined();
  });

  it("reads server_url as a comma-separated list or a YAML list of replicas", () => {
    expect(readConfigFile(file("server_url: http://a:8088, http://b:8088\n")).overrides.serverUrl).toBe(
      "http://a:8088, http://b:8088",
    );
    expect(
      readConfigFile(file("server_url:\n  - http://a:8088\n  - http://b:8088\n")).overrides.serverUrl,
    ).toBe("http://a:8088,http://b:8088");
  });

  it("reads quotas: defaults, per-tenant and per-user limits; env sets the defaults too", () => {
    const loaded = readConfigFile(
      file(
        "quotas:\n  default_max_concurrent_runs: 4\n  default_max_queued_runs: 20\n  max_bots_per_user: 2\n  tenants:\n    acme: { max_concurrent_runs: 5, max_queued_runs: 50 }\n  users:\n    ana: { max_queued_runs: 3, max_bots: 1 }\n",
      ),
    );
    const config = loadConfig({}, loaded.overrides);
    expect(config).toMatchObject({
      defaultMaxConcurrentRuns: 4,
      defaultMaxQueuedRuns: 20,
      maxBotsPerUser: 2,
      quotas: {
        tenants: { acme: { max_concurrent_runs: 5, max_queued_runs: 50 } },
        users: { ana: { max_queued_runs: 3, max_bots: 1 } },
      },
    });
    const fromEnv = loadConfig({
      RUNYARD_DEFAULT_MAX_CONCURRENT_RUNS: "7",
      RUNYARD_DEFAULT_MAX_QUEUED_RUNS: "9",
      MAX_BOTS_PER_USER: "5",
    });
    expect(fromEnv).toMatchObject({
      defaultMaxConcurrentRuns: 7,
      defaultMaxQueuedRuns: 9,
      maxBotsPerUser: 5,
    });
    expect(loadConfig({})).toMatchObject({ maxBotsPerUser: 3, quotas: {} });
    expect(loadConfig({}).defaultMaxQueuedRuns).toBeUndefined();
    expect(() => readConfigFile(file("quotas:\n  tenants:\n    acme: { max_runs: 5 }\n"))).toThrowError(
      /max_runs/,
    );
  });

  it("names unknown keys and the fix", () => {
    expect(() => readConfigFile(file("gruop: x\n"))).toThrowError(/gruop/);
  });

  it("says which file it cannot read", () => {
    expect(() => readConfigFile("/nonexistent/runyard.yaml")).toThrowError(/\/nonexistent\/runyard.yaml/);
  });
});
