import { describe, expect, it } from "vitest";
import { defaultContainerLimits, hardenedContainer } from "./container-spec.js";

const base = {
  image: "bot:1",
  name: "runyard-bot-echo",
  env: { BOT_TOKEN: "123:ABC" },
  limits: defaultContainerLimits,
  ownerLabels: { "runyard.owner": "alice" },
  network: "none",
};

describe("hardenedContainer", () => {
  it("drops every capability but NET_BIND_SERVICE, forbids privilege gain and runs as nobody", () => {
    const spec = hardenedContainer(base);
    expect(spec.HostConfig?.CapDrop).toEqual(["ALL"]);
    expect(spec.HostConfig?.CapAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(spec.HostConfig?.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(spec.HostConfig?.Privileged).toBe(false);
    expect(spec.User).toBe("65534:65534");
  });

  it("applies the avtomatika-bot limits with swap off, a read-only root and a tmpfs /tmp", () => {
    const host = hardenedContainer(base).HostConfig;
    expect(host?.Memory).toBe(268_435_456);
    expect(host?.MemorySwap).toBe(268_435_456);
    expect(host?.NanoCpus).toBe(500_000_000);
    expect(host?.PidsLimit).toBe(100);
    expect(host?.ReadonlyRootfs).toBe(true);
    expect(host?.Tmpfs).toEqual({ "/tmp": "rw,noexec,nosuid,size=64m" });
    expect(host?.NetworkMode).toBe("none");
    expect(host?.RestartPolicy).toEqual({ Name: "no" });
    expect(host?.Init).toBe(true);
    expect(host?.Binds).toEqual([]);
    expect(host?.Mounts).toEqual([]);
  });

  it("puts secrets only in Env and records the owner in labels that extra labels cannot replace", () => {
    const spec = hardenedContainer({ ...base, labels: { "runyard.test": "1", "runyard.owner": "mallory" } });
    expect(spec.Env).toEqual(["BOT_TOKEN=123:ABC"]);
    // No bot's id unless the owner labels give one: an image's runyard.bot is laid over with "".
    expect(spec.Labels).toEqual({
      "runyard.bot": "",
      "runyard.test": "1",
      "runyard.owner": "alice",
      "runyard.managed": "1",
    });
    expect(spec.Cmd).toBeUndefined();
    expect(hardenedContainer({ ...base, cmd: ["sh", "-c", "echo hi"] }).Cmd).toEqual(["sh", "-c", "echo hi"]);
  });

  it("refuses root or named users, non-positive limits and malformed env names", () => {
    expect(() => hardenedContainer({ ...base, user: "0:0" })).toThrow(/non-root/);
    expect(() => hardenedContainer({ ...base, user: "root" })).toThrow(/non-root/);
    expect(hardenedContainer({ ...base, user: "1000:1000" }).User).toBe("1000:1000");
    expect(() => hardenedContainer({ ...base, limits: { ...defaultContainerLimits, pids: 0 } })).toThrow(
      /positive/,
    );
    expect(() => hardenedContainer({ ...base, env: { "A=B": "x" } })).toThrow(/environment/);
  });

  it("rotates the container's output on the runner's disk: a bot that floods stdout cannot fill it", () => {
    expect(hardenedContainer(base).HostConfig?.LogConfig).toEqual({
      Type: "json-file",
      Config: { "max-size": "10m", "max-file": "2" },
    });
  });

  it("refuses a NUL in an env value without saying the value: Docker's start error would echo it", () => {
    const make = () => hardenedContainer({ ...base, env: { BOT_TOKEN: "123\u0000ABC" } });
    expect(make).toThrow(/BOT_TOKEN.*NUL/);
    try {
      make();
    } catch (error) {
      expect(String(error)).not.toContain("123");
    }
  });

  it("mounts only the folders asked for, and never the Docker socket", () => {
    const spec = hardenedContainer({
      ...base,
      mounts: [{ source: "/tmp/ws", target: "/work" }],
      workingDir: "/work",
    });
    expect(spec.HostConfig?.Mounts).toEqual([
      { Type: "bind", Source: "/tmp/ws", Target: "/work", ReadOnly: false },
    ]);
    expect(spec.WorkingDir).toBe("/work");
    expect(() =>
      hardenedContainer({
        ...base,
        mounts: [{ source: "/var/run/docker.sock", target: "/var/run/docker.sock" }],
      }),
    ).toThrow(/Docker engine/);
  });
});
