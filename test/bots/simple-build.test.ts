import { mkdirSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { botContainer } from "../../src/bots/container-spec.js";
import { type SimpleBotSource, simpleBuildContext } from "../../src/bots/simple-build.js";
import { RunyardError } from "../../src/core/errors.js";
import { defaultContainerLimits } from "../../src/exec/docker/container-spec.js";
import { DockerEngine, ImageBuildError } from "../../src/exec/docker/docker-engine.js";
import { nodeBaseImage, pythonBaseImage } from "../helpers/base-images.js";
import { requireDocker } from "../helpers/docker.js";

const haveDocker = await requireDocker();
const run = `${process.pid}-${Date.now().toString(36)}`;
/**
 * This file's own label, not `runyard.test`: another file's `removeTestObjects` running at the
 * same time would remove a bot image between its build and its container.
 */
const runLabel = "runyard.test.simple";
const greeting = `hello-from-env-${run}`;
let serial = 0;

/** Seed 001's echo bot, offline: a line per second with the GREETING it was given in its env. */
const pythonBot = [
  "import os, time",
  'greeting = os.environ["GREETING"]',
  "n = 0",
  "while True:",
  "    n += 1",
  '    print(f"{greeting} {n} uid={os.getuid()}")',
  "    time.sleep(1)",
  "",
].join("\n");

const nodeBot = [
  "let n = 0;",
  "const tick = () => {",
  "  n += 1;",
  '  console.log(process.env.GREETING + " " + n + " uid=" + process.getuid());',
  "};",
  "tick();",
  "setInterval(tick, 1000);",
  "",
].join("\n");

const dirs: string[] = [];
function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "runyard-simple-"));
  dirs.push(dir);
  return dir;
}

describe.skipIf(!haveDocker)("simple-mode bots on the real engine", () => {
  const engine = new DockerEngine();
  let baseImages: SimpleBotSource["baseImages"];

  beforeAll(async () => {
    const [python, node] = await Promise.all([pythonBaseImage(), nodeBaseImage()]);
    baseImages = { python, node };
  }, 180_000);

  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  afterAll(async () => {
    const filters = { label: [`${runLabel}=${run}`] };
    const containers = await engine.docker.listContainers({ all: true, filters });
    await Promise.all(containers.map((c) => engine.remove(c.Id)));
    for (const image of await engine.docker.listImages({ filters })) {
      await engine.docker.getImage(image.Id).remove({ force: true });
    }
  }, 60_000);

  /** Builds the bot as simple mode does, keeping the build's progress lines. */
  async function buildBot(files: Record<string, string>): Promise<{ tag: string; progress: string[] }> {
    serial += 1;
    const tag = `runyard-test-simple-bot:${run}-${serial}`;
    const dir = tempDir();
    simpleBuildContext({ files, requirements: [], baseImages }, dir);
    const progress: string[] = [];
    await engine.build(dir, tag, (line) => progress.push(line), { [runLabel]: run });
    return { tag, progress };
  }

  /** Starts the image hardened with GREETING in its env, and reads its first `count` lines as they come. */
  async function firstLines(image: string, count: number): Promise<string[]> {
    const botId = `simple-${run}-${serial}`;
    const id = await engine.run(
      botContainer({
        image,
        name: `runyard-test-${botId}`,
        env: { GREETING: greeting },
        limits: defaultContainerLimits,
        ownership: { botId, tenantId: "acme", owner: "alice", expiresAt: "2026-11-23T15:00:00.000Z" },
        network: "none",
        labels: { [runLabel]: run },
      }),
    );
    const lines: string[] = [];
    try {
      for await (const line of engine.logs(id, { follow: true })) {
        expect(line.stream, line.line).toBe("stdout");
        lines.push(line.line);
        if (lines.length === count) break;
      }
      expect((await engine.inspect(id)).state).toBe("running");
    } finally {
      await engine.remove(id);
    }
    return lines;
  }

  it("builds the avtomatika-bot echo bot in python, runs it hardened, and its lines carry GREETING from the env", async () => {
    const { tag, progress } = await buildBot({ "echo_bot.py": pythonBot });
    expect(progress.some((line) => line.includes("COPY app/ ./"))).toBe(true);
    expect(await firstLines(tag, 2)).toEqual([`${greeting} 1 uid=65534`, `${greeting} 2 uid=65534`]);
  }, 60_000);

  it("builds a node bot from index.js and runs it the same way", async () => {
    const { tag } = await buildBot({ "index.js": nodeBot, "README.md": "not code\n" });
    expect(await firstLines(tag, 2)).toEqual([`${greeting} 1 uid=65534`, `${greeting} 2 uid=65534`]);
  }, 60_000);

  it("keeps the env's value out of the image: not in docker history, not in its config", async () => {
    const { tag } = await buildBot({ "bot.py": pythonBot });
    const history = await engine.docker.getImage(tag).history();
    const created = history.map((layer: { CreatedBy: string }) => layer.CreatedBy);
    expect(created.some((line: string) => line.includes("python3"))).toBe(true);
    expect(JSON.stringify(history)).not.toContain(greeting);
    const info = await engine.docker.getImage(tag).inspect();
    expect(JSON.stringify(info.Config)).not.toContain(greeting);
    expect(info.Config.User).toBe("65534:65534");
    expect(info.Config.Cmd).toEqual(["python3", "-u", "bot.py"]);
  }, 60_000);

  it("a failing requirements install ends the build with BOT_BUILD_FAILED and the step's last lines", async () => {
    // The offline base has no pip: the install step fails as a bad requirement would.
    const dir = tempDir();
    simpleBuildContext({ files: { "bot.py": pythonBot }, requirements: ["aiogram>=3.0"], baseImages }, dir);
    const tag = `runyard-test-simple-bot:${run}-failing`;
    const error = await engine
      .build(dir, tag, () => {}, { [runLabel]: run })
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ImageBuildError);
    expect((error as ImageBuildError).code).toBe("BOT_BUILD_FAILED");
    const last = (error as ImageBuildError).lastLines.join("\n");
    expect(last).toContain("RUN pip install --no-cache-dir -r requirements.txt");
    expect(last).toMatch(/pip: not found/);
  }, 60_000);

  it("refuses an entrypoint of unknown language with INVALID_INPUT and a hint, writing nothing", () => {
    const dir = tempDir();
    let error: unknown;
    try {
      simpleBuildContext(
        { files: { "bot.rb": "puts 1\n", Gemfile: "" }, entrypoint: "bot.rb", requirements: [], baseImages },
        dir,
      );
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RunyardError);
    expect((error as RunyardError).code).toBe("INVALID_INPUT");
    expect((error as RunyardError).hint).toContain("Gemfile, bot.rb");
    expect(readdirSync(dir)).toEqual([]);
  });

  it("refuses a file named ../x before anything is written", () => {
    const parent = tempDir();
    const dir = join(parent, "context");
    mkdirSync(dir);
    expect(() =>
      simpleBuildContext(
        { files: { "bot.py": pythonBot, "../x": "escaped" }, requirements: [], baseImages },
        dir,
      ),
    ).toThrow(/"\.\.\/x" is refused/);
    expect(readdirSync(dir)).toEqual([]);
    expect(readdirSync(parent)).toEqual(["context"]);
  });
});
