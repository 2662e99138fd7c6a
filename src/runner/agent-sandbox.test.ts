import { describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.js";
import type { DockerEngine } from "../exec/docker/docker-engine.js";
import { type AgentSandboxSettings, fullImageRef, imageAllowed, sandboxRefusal } from "./agent-sandbox.js";

const settings = (more: Partial<AgentSandboxSettings> = {}): AgentSandboxSettings => ({
  engine: {} as DockerEngine,
  forwarder: undefined,
  allow: [],
  labels: () => ({}),
  ...more,
});

describe("which images a task's sandbox may name", () => {
  it("allows the runner's default image and the operator's list, a bare name meaning its latest", () => {
    const on = settings({ defaultSandbox: { image: "runyard-agent" }, images: ["node-tools:2", "py:*"] });
    for (const image of [
      "runyard-agent",
      "runyard-agent:latest",
      "docker.io/library/runyard-agent",
      "node-tools:2",
      "py:3.12",
    ]) {
      expect(sandboxRefusal({ image }, on), image).toBeUndefined();
    }
  });

  it("refuses any other image on the engine, another tenant's bot image included, naming what is allowed", () => {
    const on = settings({ defaultSandbox: { image: "runyard-agent" }, images: ["py:*"] });
    for (const image of ["runyard-bot-0123abcd:latest", "runyard-bot-0123abcd", "node-tools:2", "busybox"]) {
      const refusal = sandboxRefusal({ image }, on);
      expect(refusal?.code, image).toBe("AGENT_SANDBOX_IMAGE_NOT_ALLOWED");
      expect(refusal?.message).toContain(JSON.stringify(image));
      expect(refusal?.message).toContain("runyard-agent, py:*");
      expect(refusal?.hint).toContain("RUNYARD_AGENT_SANDBOX_IMAGES");
    }
    expect(sandboxRefusal({ image: "anything" }, settings())?.message).toMatch(
      /allows no image a task names/,
    );
  });

  it("takes NAME:* as tags of NAME only: no other name, no digest, no id", () => {
    expect(imageAllowed("py:3", ["py:*"])).toBe(true);
    expect(imageAllowed("py", ["py:*"])).toBe(true);
    expect(imageAllowed("pyx:3", ["py:*"])).toBe(false);
    expect(imageAllowed("py/evil:3", ["py:*"])).toBe(false);
    expect(imageAllowed(`py@sha256:${"a".repeat(64)}`, ["py:*"])).toBe(false);
    expect(imageAllowed("registry.example.com/team/py:1", ["registry.example.com/team/py:*"])).toBe(true);
    // An image id is Docker's to resolve to anything: allowed only as listed.
    expect(imageAllowed("0123456789ab", ["runyard-agent"])).toBe(false);
    expect(fullImageRef("0123456789ab")).toBe("0123456789ab:latest");
    expect(fullImageRef("localhost:5000/agent")).toBe("localhost:5000/agent:latest");
  });

  it("reads the list and the ceilings from the runner's environment", () => {
    const config = loadConfig({
      RUNYARD_AGENT_SANDBOX_IMAGES: "node-tools:2, py:*",
      RUNYARD_AGENT_SANDBOX_MAX_MEMORY: "8g",
      RUNYARD_AGENT_SANDBOX_MAX_CPUS: "4",
    });
    expect(config.agentSandboxImages).toEqual(["node-tools:2", "py:*"]);
    expect(config.agentSandboxMaxMemory).toBe("8g");
    expect(config.agentSandboxMaxCpus).toBe(4);
    expect(config.agentSandboxMaxPids).toBe(4096);
    expect(() => loadConfig({ RUNYARD_AGENT_SANDBOX_IMAGES: "runyard-bot-*" })).toThrowError(/NAME:\*/);
    expect(() => loadConfig({ RUNYARD_AGENT_SANDBOX_MAX_MEMORY: "lots" })).toThrowError(/size like 8g/);
  });
});

describe("the operator's ceilings on a task's sandbox", () => {
  const on = settings({
    defaultSandbox: { image: "runyard-agent" },
    ceilings: { memoryBytes: 4 * 1024 ** 3, cpus: 2, pids: 4096 },
  });

  it("runs a sandbox within them", () => {
    expect(sandboxRefusal({ image: "runyard-agent", memory: "4g", cpus: 2, pids: 4096 }, on)).toBeUndefined();
    expect(sandboxRefusal({ image: "runyard-agent" }, on)).toBeUndefined();
  });

  it("refuses one over any of them, naming each and its setting, rather than cut it down", () => {
    const refusal = sandboxRefusal({ image: "runyard-agent", memory: "1000g", cpus: 64, pids: 100_000 }, on);
    expect(refusal?.code).toBe("AGENT_SANDBOX_OVER_LIMIT");
    expect(refusal?.message).toContain(
      "memory 1000g is over this runner's ceiling of 4g (RUNYARD_AGENT_SANDBOX_MAX_MEMORY)",
    );
    expect(refusal?.message).toContain(
      "cpus 64 is over this runner's ceiling of 2 (RUNYARD_AGENT_SANDBOX_MAX_CPUS)",
    );
    expect(refusal?.message).toContain(
      "pids 100000 is over this runner's ceiling of 4096 (RUNYARD_AGENT_SANDBOX_MAX_PIDS)",
    );
    expect(refusal?.hint).toContain("RUNYARD_AGENT_SANDBOX_MAX_MEMORY");
  });
});
