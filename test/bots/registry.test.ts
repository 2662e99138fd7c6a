import type { Readable } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { botContainer } from "../../src/bots/container-spec.js";
import { RunyardError } from "../../src/core/errors.js";
import { defaultContainerLimits } from "../../src/exec/docker/container-spec.js";
import { credentialedPullMark } from "../../src/exec/docker/credentialed-pulls.js";
import { DockerEngine, type LogLine } from "../../src/exec/docker/docker-engine.js";
import { busyboxImage, requireDocker, testLabel } from "../helpers/docker.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";

const haveDocker = await requireDocker();
const run = `${process.pid}-${Date.now().toString(36)}`;

/** Pushes with dockerode directly (runyard itself only pulls); fails on an error line. */
async function push(engine: DockerEngine, ref: string, registry: TestRegistry): Promise<void> {
  const [repo, tag] = [ref.slice(0, ref.lastIndexOf(":")), ref.slice(ref.lastIndexOf(":") + 1)];
  const stream = (await engine.docker.getImage(ref).push({
    tag,
    authconfig: { username: registry.username, password: registry.password, serveraddress: registry.host },
  })) as unknown as Readable;
  const messages = await new Promise<{ error?: string }[]>((resolve, reject) =>
    engine.docker.modem.followProgress(stream, (error: Error | null, output: { error?: string }[]) =>
      error ? reject(error) : resolve(output),
    ),
  );
  const failed = messages.find((m) => m.error !== undefined);
  if (failed) throw new Error(`pushing ${repo}:${tag} failed: ${failed.error}`);
}

async function pullError(promise: Promise<void>): Promise<RunyardError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(RunyardError);
  return error as RunyardError;
}

describe.skipIf(!haveDocker)("pulling a bot's image from a private registry", () => {
  const engine = new DockerEngine();
  let registry: TestRegistry;
  let ref: string;

  beforeAll(async () => {
    registry = await startRegistry();
    const local = await busyboxImage();
    ref = `${registry.host}/bots/echo:1`;
    await engine.docker.getImage(local).tag({ repo: `${registry.host}/bots/echo`, tag: "1" });
    await push(engine, ref, registry);
    // Only the registry has it now: the pull below must fetch it.
    await engine.docker.getImage(ref).remove();
  }, 120_000);

  // Only what this file made (by its run label and the pulled name): other test files running
  // at the same time use the shared busybox image, which their own afterAll removes.
  afterAll(async () => {
    await registry?.stop();
    const mine = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.test.run=${run}`] },
    });
    await Promise.all(mine.map((c) => engine.remove(c.Id)));
    for (const name of ref ? [ref, credentialedPullMark(ref)] : []) {
      await engine.docker
        .getImage(name)
        .remove({ force: true })
        .catch((error: { statusCode?: number }) => {
          if (error.statusCode !== 404) throw error;
        });
    }
  }, 60_000);

  it("pulls with the right credentials, streams progress without the password, and runs it hardened", async () => {
    const lines: string[] = [];
    await engine.pull(ref, {
      auth: { username: registry.username, password: registry.password },
      onProgress: (line) => lines.push(line),
    });
    expect(lines.length).toBeGreaterThan(0);
    expect(lines.every((l) => l.startsWith(`pulling ${ref}: `))).toBe(true);
    // The layers are the local busybox image's, so Docker fetches only the manifest; this says it did.
    expect(lines.at(-1)).toBe(`pulling ${ref}: Status: Downloaded newer image for ${ref}`);
    expect(lines.join("\n")).not.toContain(registry.password);

    const botId = `bot-${run}`;
    const id = await engine.run(
      botContainer({
        image: ref,
        name: `runyard-test-${botId}`,
        env: {},
        cmd: ["sh", "-c", "echo pulled; id -u"],
        limits: defaultContainerLimits,
        ownership: { botId, tenantId: "acme", owner: "alice", expiresAt: "2026-11-23T15:00:00.000Z" },
        network: "none",
        labels: { [testLabel]: "1", "runyard.test.run": run },
      }),
    );
    await engine.docker.getContainer(id).wait();
    const out: LogLine[] = [];
    for await (const line of engine.logs(id)) out.push(line);
    expect(out.filter((l) => l.stream === "stdout").map((l) => l.line)).toEqual(["pulled", "65534"]);
    expect(await engine.inspect(id)).toMatchObject({ state: "exited", exitCode: 0 });
  }, 120_000);

  it("a wrong password is BOT_REGISTRY_AUTH, and the password is in no message", async () => {
    const wrong = `${registry.password}-wrong`;
    const lines: string[] = [];
    const error = await pullError(
      engine.pull(ref, {
        auth: { username: registry.username, password: wrong },
        onProgress: (l) => lines.push(l),
      }),
    );
    expect(error.code).toBe("BOT_REGISTRY_AUTH");
    expect(error.hint).toMatch(/credentials/);
    for (const text of [error.message, error.hint, JSON.stringify(error.details ?? null), ...lines]) {
      expect(text).not.toContain(wrong);
      expect(text).not.toContain(registry.password);
    }
  }, 60_000);

  it("an unknown tag is BOT_IMAGE_NOT_FOUND", async () => {
    const error = await pullError(
      engine.pull(`${registry.host}/bots/echo:no-such-tag`, {
        auth: { username: registry.username, password: registry.password },
      }),
    );
    expect(error.code).toBe("BOT_IMAGE_NOT_FOUND");
    expect(error.message).toContain("no-such-tag");
    expect(error.message).not.toContain(registry.password);
  }, 60_000);

  it("a stopped registry is BOT_REGISTRY_UNREACHABLE", async () => {
    const stopped = await startRegistry();
    await stopped.stop();
    const error = await pullError(
      engine.pull(`${stopped.host}/bots/echo:1`, {
        auth: { username: stopped.username, password: stopped.password },
      }),
    );
    expect(error.code).toBe("BOT_REGISTRY_UNREACHABLE");
    expect(error.hint).toMatch(/reach/);
    expect(error.message).not.toContain(stopped.password);
  }, 60_000);
});
