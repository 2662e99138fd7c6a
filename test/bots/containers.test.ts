import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { botContainer } from "../../src/bots/container-spec.js";
import { defaultContainerLimits } from "../../src/exec/docker/container-spec.js";
import {
  type ContainerEvent,
  DockerEngine,
  ImageBuildError,
  type LogLine,
} from "../../src/exec/docker/docker-engine.js";
import {
  busyboxImage,
  removeTestObjects,
  requireDocker,
  testLabel,
  testRunLabel,
} from "../helpers/docker.js";

const haveDocker = await requireDocker();
const run = `${process.pid}-${Date.now().toString(36)}`;
let serial = 0;

/** A hardened spec for the busybox image, labelled for clean-up, with its own bot id. */
function spec(image: string, cmd: string[], env: Record<string, string> = {}) {
  serial += 1;
  const botId = `bot-${run}-${serial}`;
  return botContainer({
    image,
    name: `runyard-test-${botId}`,
    env,
    cmd,
    limits: defaultContainerLimits,
    ownership: { botId, tenantId: "acme", owner: "alice", expiresAt: "2026-11-23T15:00:00.000Z" },
    network: "none",
    labels: { [testLabel]: "1", [testRunLabel]: run },
  });
}

async function collect(lines: AsyncIterable<LogLine>): Promise<LogLine[]> {
  const all: LogLine[] = [];
  for await (const line of lines) all.push(line);
  return all;
}

/** Waits for the container to end through Docker's own wait endpoint (no polling). */
async function waitExit(engine: DockerEngine, id: string): Promise<void> {
  await engine.docker.getContainer(id).wait();
}

describe.skipIf(!haveDocker)("hardened bot containers on the real engine", () => {
  const engine = new DockerEngine();
  let image: string;

  beforeAll(async () => {
    image = await busyboxImage();
  }, 120_000);

  afterAll(async () => {
    await removeTestObjects(run);
  }, 60_000);

  it("runs the busybox image hardened, and its stdout and stderr come back as lines", async () => {
    const id = await engine.run(spec(image, ["sh", "-c", "echo hello; echo oops >&2; id -u; echo done"]));
    await waitExit(engine, id);
    const lines = await collect(engine.logs(id));
    // Docker copies the two pipes on their own, so only the order within a stream is kept.
    expect(lines.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual(["hello", "65534", "done"]);
    expect(lines.filter((l) => l.stream === "stderr").map((l) => l.line)).toEqual(["oops"]);
    const state = await engine.inspect(id);
    expect(state).toMatchObject({ state: "exited", exitCode: 0, oomKilled: false, restartCount: 0 });
    expect(state.startedAt).not.toBeNull();
  });

  it("shows the hardening in docker inspect, and the root is read-only while /tmp is writable", async () => {
    const id = await engine.run(
      spec(image, [
        "sh",
        "-c",
        "touch /x 2>&1 || echo root-readonly; echo ok > /tmp/y && cat /tmp/y; grep CapEff /proc/self/status; grep NoNewPrivs /proc/self/status",
      ]),
    );
    await waitExit(engine, id);
    const info = await engine.docker.getContainer(id).inspect();
    const host = info.HostConfig;
    expect(host.CapDrop).toEqual(["ALL"]);
    expect(host.CapAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(host.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(host.Memory).toBe(256 * 1024 * 1024);
    expect(host.MemorySwap).toBe(256 * 1024 * 1024);
    expect(host.NanoCpus).toBe(500_000_000);
    expect(host.PidsLimit).toBe(100);
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.Privileged).toBe(false);
    expect(host.NetworkMode).toBe("none");
    expect(host.RestartPolicy?.Name).toBe("no");
    expect(host.Binds ?? []).toEqual([]);
    expect(info.Mounts).toEqual([]);
    expect(info.Config.User).toBe("65534:65534");
    const out = (await collect(engine.logs(id))).map((l) => l.line);
    expect(out).toContain("root-readonly");
    expect(out).toContain("ok");
    // NET_BIND_SERVICE is bit 10: the only capability left, and none effective for a non-root user.
    expect(out).toContain("CapEff:\t0000000000000000");
    expect(out).toContain("NoNewPrivs:\t1");
  });

  it("a process going past 256 MiB is OOM-killed: inspect says so, and oom then die arrive as events", async () => {
    // One 400 MiB buffer filled by one read: past the limit in a fraction of a second of CPU (a
    // tail holding a growing line needs seconds of it at the container's half a CPU).
    const specOf = spec(image, ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=400M count=1"]);
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = await engine.run(specOf);
    await waitExit(engine, id);
    const state = await engine.inspect(id);
    expect(state.oomKilled).toBe(true);
    expect(state.state).toBe("exited");
    const actions: string[] = [];
    const label = `runyard.bot=${specOf.Labels?.["runyard.bot"]}`;
    for await (const event of engine.events({ label, since })) {
      actions.push(event.action);
      if (event.action === "die") break;
    }
    // The kernel may OOM-kill more than once before the container ends (one event each). The
    // replayed `start` may fall before `since` (Docker's seconds are coarse): oom, then die, is
    // what runyard reads.
    expect(actions.filter((action, i) => action !== actions[i - 1]).slice(-2)).toEqual(["oom", "die"]);
  }, 60_000);

  it("a container exiting 1 reports exit code 1, its last lines stay readable, and die arrives as an event", async () => {
    const controller = new AbortController();
    const events: ContainerEvent[] = [];
    const specOf = spec(
      image,
      ["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done; echo failing; exit 1"],
      {
        BOT_TOKEN: `secret-${run}`,
      },
    );
    const botId = specOf.Labels?.["runyard.bot"] ?? "";
    // Opened after the start on purpose: `since` replays the events Docker kept from then on.
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = await engine.run(specOf);
    for await (const event of engine.events({
      label: `runyard.bot=${botId}`,
      since,
      signal: controller.signal,
    })) {
      events.push(event);
      if (event.action === "die") break;
    }
    controller.abort();
    expect(events.map((e) => e.action)).toEqual(["start", "die"]);
    expect(events[1]).toMatchObject({ containerId: id, exitCode: 1 });
    expect(events[1]?.labels["runyard.bot"]).toBe(botId);
    expect(JSON.stringify(events)).not.toContain(`secret-${run}`);
    const state = await engine.inspect(id);
    expect(state).toMatchObject({ state: "exited", exitCode: 1, oomKilled: false });
    expect(state.finishedAt).not.toBeNull();
    const tail = await collect(engine.logs(id, { tail: 3 }));
    expect(tail).toEqual([
      { stream: "stdout", line: "line 4" },
      { stream: "stdout", line: "line 5" },
      { stream: "stdout", line: "failing" },
    ]);
  });

  it("a watch of container events aborted while Docker's answer is on its way ends at once", async () => {
    const controller = new AbortController();
    // No container carries this label: only the abort can end the watch.
    const events = engine.events({ label: `runyard.bot=bot-${run}-none`, signal: controller.signal });
    const first = events.next();
    // The watch is waiting for Docker's answer now: an abort event fired here does not come again.
    controller.abort();
    expect(await first).toEqual({ done: true, value: undefined });
  }, 30_000);

  it("a watch of container events ends when its signal aborts, though no further event comes", async () => {
    const controller = new AbortController();
    const specOf = spec(image, ["sleep", "600"]);
    const since = Math.floor(Date.now() / 1000) - 1;
    const id = await engine.run(specOf);
    try {
      const events = engine.events({
        label: `runyard.bot=${specOf.Labels?.["runyard.bot"]}`,
        since,
        signal: controller.signal,
      });
      // Its start, replayed: the watch is open and reading.
      expect((await events.next()).value).toMatchObject({ action: "start", containerId: id });
      const next = events.next();
      controller.abort();
      expect(await next).toEqual({ done: true, value: undefined });
    } finally {
      await engine.remove(id);
    }
  }, 30_000);

  it("following a container's logs yields its lines as they come and ends when it exits; since filters by time", async () => {
    const id = await engine.run(
      spec(image, ["sh", "-c", "echo one; sleep 1; echo two; sleep 1; echo three"]),
    );
    const followed = await collect(engine.logs(id, { follow: true }));
    expect(followed.map((l) => l.line)).toEqual(["one", "two", "three"]);
    expect((await engine.inspect(id)).state).toBe("exited");
    expect(await collect(engine.logs(id, { since: Math.floor(Date.now() / 1000) + 3600 }))).toEqual([]);
  }, 30_000);

  it("a secret given in env is in the container only: not in the image's history nor its config", async () => {
    const secret = `tok-${run}-Zq9`;
    const id = await engine.run(
      spec(image, ["sh", "-c", 'test -n "$BOT_TOKEN" && echo has-token'], { BOT_TOKEN: secret }),
    );
    await waitExit(engine, id);
    expect((await collect(engine.logs(id))).map((l) => l.line)).toEqual(["has-token"]);
    const history = await engine.docker.getImage(image).history();
    expect(JSON.stringify(history)).not.toContain(secret);
    const config = await engine.docker.getImage(image).inspect();
    expect(JSON.stringify(config)).not.toContain(secret);
    // The container's env holds it, as it must for the bot to read it.
    const info = await engine.docker.getContainer(id).inspect();
    expect(info.Config.Env).toContain(`BOT_TOKEN=${secret}`);
  });

  it("follows a running container's logs, reports stats, stops it and finds it by label from a new engine", async () => {
    const id = await engine.run(spec(image, ["sh", "-c", "echo up; while true; do sleep 1; done"]));
    const follow = engine.logs(id, { follow: true });
    const first = await follow.next();
    expect(first.value).toEqual({ stream: "stdout", line: "up" });
    await follow.return(undefined);
    expect((await engine.inspect(id)).state).toBe("running");
    const stats = await engine.stats(id);
    expect(stats.memoryBytes).toBeGreaterThan(0);
    expect(stats.memoryBytes).toBeLessThan(256 * 1024 * 1024);
    expect(stats.cpuPercent).toBeGreaterThanOrEqual(0);

    // A restarted server has only Docker's labels to go on.
    const fresh = new DockerEngine();
    const managed = (await fresh.listManaged()).filter((c) => c.labels["runyard.test.run"] === run);
    const found = managed.find((c) => c.id === id);
    expect(found).toMatchObject({ state: "running", image });
    expect(found?.labels).toMatchObject({
      "runyard.managed": "1",
      "runyard.tenant": "acme",
      "runyard.owner": "alice",
    });

    await fresh.stop(id, 1);
    expect((await fresh.inspect(id)).state).toBe("exited");
    await fresh.stop(id, 1);
    await fresh.remove(id);
    await fresh.remove(id);
    expect((await fresh.listManaged()).some((c) => c.id === id)).toBe(false);
  }, 30_000);

  it("a failing build is an ImageBuildError carrying the build's last lines; build progress streams", async () => {
    const context = mkdtempSync(join(tmpdir(), "runyard-build-"));
    try {
      writeFileSync(
        join(context, "Dockerfile"),
        `FROM ${image}\nLABEL ${testLabel}=1 ${testRunLabel}=${run}\nRUN echo building-step\nRUN sh -c 'echo about-to-fail; exit 3'\n`,
      );
      const progress: string[] = [];
      const failure = await engine
        .build(context, `runyard-test-fail:${run}`, (line) => progress.push(line), {
          [testLabel]: "1",
          [testRunLabel]: run,
        })
        .catch((error: unknown) => error);
      expect(failure).toBeInstanceOf(ImageBuildError);
      const error = failure as ImageBuildError;
      expect(error.reason).toMatch(/returned a non-zero code: 3/);
      expect(error.lastLines.join("\n")).toContain("about-to-fail");
      expect(progress.join("\n")).toContain("building-step");
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  }, 60_000);
});
