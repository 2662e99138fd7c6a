/**
 * docker-compose.yml, checked offline: the promises docs/deploy.md makes about it. The compose
 * test (test/deploy/compose.test.ts) runs it against a real engine; this one keeps its settings
 * honest in the fast unit project, as deploy-kubernetes.test.ts does for the manifests.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "./core/config.js";

const root = fileURLToPath(new URL("..", import.meta.url));

interface Service {
  image: string;
  command: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  privileged?: boolean;
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}

const compose = parse(readFileSync(join(root, "docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const runners = Object.entries(compose.services).filter(([, service]) => service.command[0] === "runner");

describe("docker-compose.yml", () => {
  it("runs one server and two runners in two groups, configured with the ADOS runner's ADOS_* variables", () => {
    expect(compose.services.server?.command.slice(0, 1)).toEqual(["server"]);
    const configs = runners.map(([, service]) => loadConfig({ ...service.environment, ADOS_TOKEN: "ryt_x" }));
    expect(configs.map((c) => [c.runnerId, c.group, c.hostname, c.mode, c.serverUrl, c.token])).toEqual([
      ["frontend-001", "frontend-runners", "frontend-001", "all", "http://server:8088", "ryt_x"],
      ["backend-001", "backend-runners", "backend-001", "all", "http://server:8088", "ryt_x"],
    ]);
    for (const [, service] of runners) {
      expect(service.environment?.ADOS_TOKEN).toMatch(/^\$\{[A-Z_]+_RUNNER_TOKEN:-\}$/);
      expect(service.depends_on?.server?.condition).toBe("service_healthy");
    }
  });

  it("mounts no Docker socket and runs nothing privileged", () => {
    for (const service of Object.values(compose.services)) {
      expect(service.privileged).toBeUndefined();
      for (const volume of service.volumes ?? []) expect(volume).not.toContain("docker.sock");
    }
  });

  it("keeps each service's home in a named volume, and publishes the server on loopback only", () => {
    for (const [name, service] of Object.entries(compose.services)) {
      const home = service.volumes?.find((volume) => volume.endsWith(":/var/lib/runyard"));
      expect(home, name).toBeDefined();
      expect(Object.keys(compose.volumes)).toContain(home?.split(":")[0]);
    }
    expect(compose.services.server?.ports).toEqual(["127.0.0.1:8088:8088"]);
    expect(compose.services.server?.healthcheck?.test.join(" ")).toContain("http://127.0.0.1:8088/health");
  });
});
