import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
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

  it("names unknown keys and the fix", () => {
    expect(() => readConfigFile(file("gruop: x\n"))).toThrowError(/gruop/);
  });

  it("says which file it cannot read", () => {
    expect(() => readConfigFile("/nonexistent/runyard.yaml")).toThrowError(/\/nonexistent\/runyard.yaml/);
  });
});
