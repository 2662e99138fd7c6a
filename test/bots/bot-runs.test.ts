import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { pythonBaseImage } from "../helpers/base-images.js";
import { type BotView, botLogs, botStatus, waitBot as waitBotIn, waitBotLogs } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  commandImage as commandImageOf,
  removeBotObjects,
  removeTestObjects,
  requireDocker,
} from "../helpers/docker.js";
import { git as gitIn, seedBareRepo } from "../helpers/git-repos.js";
import { startRegistry, type TestRegistry } from "../helpers/registry.js";
import {
  api,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * Bots end to end (issue 10): a real server and runner process, the real Docker engine, every
 * deploy mode from start to removed, the limits as Docker applies them, crash, OOM, lifetime,
 * quota, and seed 001's `POST /jobs`.
 */

const haveDocker = await requireDocker();
const run = `bots-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();
const botToken = `123456:ABC-secret-${run}`;
/** The server's cap on a bot's stored output: its newest bytes are kept. */
const logCap = 32 * 1024;

let server: TestServer;
let runner: Proc;
let botImage: string;
const botIds: string[] = [];

async function startBot(body: Record<string, unknown>): Promise<{ bot: BotView; run_id: string }> {
  const answer = await api<{ bot: BotView; run_id: string }>(server.url, "POST", "/api/bots", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  botIds.push(answer.body.bot.id);
  return answer.body;
}

const status = (name: string) => botStatus(server.url, name);
const waitBot = (name: string, predicate: (bot: BotView) => boolean, timeoutMs?: number) =>
  waitBotIn(server.url, name, predicate, timeoutMs);
const logs = (name: string, query = "") => botLogs(server.url, name, query);
const waitLogs = (name: string, text: string) => waitBotLogs(server.url, name, text);

async function stopAndRemove(name: string): Promise<void> {
  const current = await status(name);
  if (["building", "pulling", "running"].includes(current.state)) {
    const stopped = await api<BotView>(server.url, "POST", `/api/bots/${name}/stop`);
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    expect(
      stopped.body.state,
      `${JSON.stringify(await readEvents(server.url, current.run_id!))}\n${runner.output()}`,
    ).toBe("stopped");
  }
  const removed = await api<BotView>(server.url, "DELETE", `/api/bots/${name}`);
  expect(removed.status).toBe(200);
  expect(removed.body.state).toBe("removed");
}

/** The containers of a bot on the engine (by its label): none once it ended. */
async function containersOf(botId: string) {
  return engine.docker.listContainers({ all: true, filters: { label: [`runyard.bot=${botId}`] } });
}

const commandImage = (tag: string, script: string) => commandImageOf(tag, script, run);

describe.skipIf(!haveDocker)("bots on a real server, runner and Docker engine", () => {
  beforeAll(async () => {
    const python = await pythonBaseImage();
    // A shell as PID 1 ignores SIGTERM unless it traps it: this bot stops at once, as a real one should.
    botImage = await commandImage(
      `runyard-test-bot-${run}:1`,
      'trap "exit 0" TERM; echo "bot up as $(id -u)"; while true; do sleep 1 & wait $!; done',
    );
    server = await startTestServer(tempDir(), {
      RUNYARD_BOT_NETWORK: "none",
      RUNYARD_BOT_MEMORY_MB: "64",
      RUNYARD_MAX_BOT_LOG_BYTES: String(logCap),
    });
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: `bot-runner-${run}`,
      env: {
        RUNYARD_BOT_BASE_IMAGE_PYTHON: python,
        // Its git-mode bot clones a repository in a temp folder.
        RUNYARD_BOT_GIT_LOCAL: "1",
        // A sample each second (not each 5 s): the first test waits for the bot's memory figure.
        RUNYARD_BOT_STATS_SECS: "1",
        RUNYARD_LOG_LEVEL: process.env.DEBUG_RUNNER ? "info" : "error",
      },
    });
  }, 240_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("simple mode: the avtomatika-bot quick start's echo bot builds, runs hardened with its env, logs, stops and is removed", async () => {
    const code = [
      "import os, time",
      'print("echo bot up, token", os.environ["BOT_TOKEN"], flush=True)',
      "while True:",
      '    print("tick", flush=True)',
      "    time.sleep(0.5)",
      "",
    ].join("\n");
    const { bot, run_id } = await startBot({
      name: "echo-bot",
      files: { "bot.py": code },
      env: { BOT_TOKEN: botToken },
    });
    expect(bot.state).toBe("building");
    const running = await waitBot("echo-bot", (b) => b.state === "running");
    expect(running.runner_id).toBe(`bot-runner-${run}`);
    expect(running.uptime_secs).not.toBeNull();
    const lines = await waitLogs("echo-bot", "echo bot up");
    // What it uses now, sampled by its runner and carried by the heartbeats.
    const sampled = await waitBot("echo-bot", (b) => b.memory_bytes !== null, 20_000);
    expect(sampled.memory_bytes).toBeGreaterThan(100_000);
    expect(sampled.memory_bytes).toBeLessThan(64 * 1024 * 1024);
    expect(sampled.cpu_percent).toBeGreaterThanOrEqual(0);
    // The token reached the container's env, and never runyard's logs: they are masked.
    expect(lines.find((line) => line.includes("echo bot up"))).toBe("echo bot up, token ***");
    const build = await logs("echo-bot", "?build=true");
    expect(build.join("\n")).toMatch(/FROM runyard-test-python/);

    // The limits, as Docker holds them.
    const [container] = await containersOf(bot.id);
    const info = await engine.docker.getContainer(container!.Id).inspect();
    expect(info.HostConfig.Memory).toBe(64 * 1024 * 1024);
    expect(info.HostConfig.MemorySwap).toBe(64 * 1024 * 1024);
    expect(info.HostConfig.NanoCpus).toBe(500_000_000);
    expect(info.HostConfig.PidsLimit).toBe(100);
    expect(info.HostConfig.CapDrop).toEqual(["ALL"]);
    expect(info.HostConfig.CapAdd).toEqual(["NET_BIND_SERVICE"]);
    expect(info.HostConfig.SecurityOpt).toEqual(["no-new-privileges"]);
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.HostConfig.NetworkMode).toBe("none");
    expect(info.HostConfig.Binds ?? []).toEqual([]);
    expect(info.Config.User).toBe("65534:65534");
    expect(info.Config.Labels["runyard.bot"]).toBe(bot.id);
    expect(info.Config.Labels["runyard.expires_at"]).toMatch(/^\d{4}-/);
    // The secret is in the container's env only: not in the image's history or config.
    const history = await engine.docker.getImage(info.Image).history();
    expect(JSON.stringify(history)).not.toContain(botToken);
    expect(JSON.stringify((await engine.docker.getImage(info.Image).inspect()).Config)).not.toContain(
      botToken,
    );
    // Nor in any stored event.
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/echo-bot/stop");
    expect(stopped.body.state).toBe("stopped");
    expect(await containersOf(bot.id)).toEqual([]);
    const events = await readEvents(server.url, run_id);
    expect(JSON.stringify(events)).not.toContain(botToken);
    expect(events.at(-1)).toMatchObject({ type: "run.finished", status: "canceled" });
    expect(events.filter((e) => e.type === "bot.state").map((e) => (e as { state: string }).state)).toEqual([
      "building",
      "running",
      "stopped",
      "stopped",
    ]);
    const removed = await api<BotView>(server.url, "DELETE", "/api/bots/echo-bot");
    expect(removed.body.state).toBe("removed");
    expect((await api(server.url, "GET", "/api/bots/echo-bot")).status).toBe(404);
  }, 180_000);

  it("keeps a chatty bot's newest output within the log cap, dropping the oldest", async () => {
    // 3000 numbered lines of about 100 bytes: ten times the cap.
    const chatty = await commandImage(
      `runyard-test-chatty-${run}:1`,
      `trap "exit 0" TERM; i=0; while [ $i -lt 3000 ]; do echo "line-$i ${"x".repeat(90)}"; i=$((i+1)); done; echo done-printing; while true; do sleep 1 & wait $!; done`,
    );
    await startBot({ name: "chatty", image: chatty });
    const lines = await waitLogs("chatty", "done-printing");
    const bytes = lines.reduce((sum, line) => sum + line.length + 1, 0);
    expect(bytes).toBeLessThanOrEqual(logCap);
    expect(lines.at(-2)).toMatch(/^line-2999 /);
    const first = Number(/^line-(\d+) /.exec(lines[0] ?? "")?.[1]);
    expect(first).toBeGreaterThan(2000);
    await stopAndRemove("chatty");
  }, 60_000);

  it("a bot that exits 1 ends crashed with its exit code and its last lines kept", async () => {
    await startBot({
      name: "crasher",
      files: {
        "main.py":
          'import sys\nprint("about to fail", flush=True)\nprint("bad token", file=sys.stderr, flush=True)\nsys.exit(1)\n',
      },
    });
    const crashed = await waitBot("crasher", (b) => b.state === "crashed");
    expect(crashed.exit_code).toBe(1);
    expect(crashed.oom_killed).toBe(false);
    // stdout and stderr are two streams: their lines are kept, in whichever order Docker had them.
    expect([...(crashed.last_logs ?? [])].sort()).toEqual(["about to fail", "bad token"]);
    expect(crashed.uptime_secs).toBeNull();
    await stopAndRemove("crasher");
  }, 120_000);

  it("a bot that allocates past its memory ends crashed with the OOM flag", async () => {
    await startBot({
      name: "hog",
      files: {
        "main.py":
          'print("allocating", flush=True)\nblock = bytearray(400 * 1024 * 1024)\nprint("survived", flush=True)\n',
      },
    });
    const crashed = await waitBot("hog", (b) => b.state === "crashed");
    expect(crashed.oom_killed).toBe(true);
    expect(crashed.exit_code).toBe(137);
    expect(crashed.last_logs).toContain("allocating");
    expect(crashed.last_logs).not.toContain("survived");
    await stopAndRemove("hog");
  }, 120_000);

  it("restarts a crashing bot per its policy and ends in the restart-loop state", async () => {
    await startBot({
      name: "looper",
      image: await commandImage(`runyard-test-loop-${run}:1`, "echo once; exit 3"),
      restart: "on-failure",
      max_restarts: 2,
    });
    const looped = await waitBot("looper", (b) => b.state === "crashed", 90_000);
    expect(looped.error?.code).toBe("BOT_RESTART_LOOP");
    expect(looped.restarts).toBe(2);
    expect(looped.exit_code).toBe(3);
    const attempts = (
      await api<{ lines: { attempt: number }[] }>(server.url, "GET", "/api/bots/looper/logs")
    ).body.lines.map((l) => l.attempt);
    expect(attempts).toEqual([1, 2, 3]);
    await stopAndRemove("looper");
  }, 120_000);

  it("ends a bot at its lifetime: timeout", async () => {
    // A lifetime counts from the submission: on a busy machine a bot may take longer than it to
    // start, and then ends `timeout` at its start without running (as it should). That path is not
    // this case's: each such try doubles the lifetime, so a bot that ran is ended by its timer.
    for (let lifetime = 3, attempt = 1; ; lifetime *= 2, attempt += 1) {
      const name = `shortlived-${attempt}`;
      try {
        await startBot({ name, image: botImage, lifetime_secs: lifetime });
        const first = await waitBot(name, (b) => b.state === "running" || b.state === "timeout");
        const ended =
          first.state === "timeout" ? first : await waitBot(name, (b) => b.state === "timeout", 30_000);
        expect(ended.state).toBe("timeout");
        if (!ended.last_logs?.length && first.state === "timeout" && attempt < 3) continue;
        expect(ended.last_logs?.[0]).toMatch(/^bot up as 65534$/);
        return;
      } finally {
        await stopAndRemove(name);
      }
    }
  }, 180_000);

  it("refuses a user's fourth bot before anything is built, and frees the slot when one stops", async () => {
    for (const name of ["q1", "q2", "q3"]) await startBot({ name, image: botImage });
    const runsBefore = (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=200")).body.runs
      .length;
    const refused = await api<{ status: string; error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/bots",
      { name: "q4", files: { "bot.py": "print(1)\n" } },
    );
    expect(refused.status).toBe(429);
    expect(refused.body).toMatchObject({ status: "failure", error: { code: "QUOTA_EXCEEDED" } });
    expect(refused.body.error.message).toContain("Maximum 3 bots");
    expect(refused.body.error.hint).toContain("runyard bot stop");
    // Nothing of it was stored or queued.
    expect((await api(server.url, "GET", "/api/bots/q4")).status).toBe(404);
    expect((await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=200")).body.runs.length).toBe(
      runsBefore,
    );
    await waitBot("q1", (b) => b.state === "running");
    await stopAndRemove("q1");
    await startBot({ name: "q4", image: botImage });
    for (const name of ["q2", "q3", "q4"]) await stopAndRemove(name);
  }, 120_000);

  it("image mode pulls from a private registry with credentials, and says so when they are wrong", async () => {
    const registry: TestRegistry = await startRegistry();
    try {
      const ref = `${registry.host}/bots/echo:${run}`;
      await engine.docker.getImage(botImage).tag({ repo: `${registry.host}/bots/echo`, tag: run });
      execFileSync("docker", ["login", "-u", registry.username, "--password-stdin", registry.host], {
        input: registry.password,
        stdio: ["pipe", "ignore", "ignore"],
      });
      execFileSync("docker", ["push", ref], { stdio: "ignore" });
      execFileSync("docker", ["logout", registry.host], { stdio: "ignore" });
      await engine.docker.getImage(ref).remove();

      await startBot({
        name: "wrong-pw",
        image: ref,
        registry: { username: registry.username, password: "not-it-9876" },
      });
      const refused = await waitBot("wrong-pw", (b) => b.state === "crashed");
      expect(refused.error?.code).toBe("BOT_REGISTRY_AUTH");
      expect(JSON.stringify(refused)).not.toContain("not-it-9876");
      await stopAndRemove("wrong-pw");

      const { run_id } = await startBot({
        name: "pulled",
        image: ref,
        registry: { username: registry.username, password: registry.password },
      });
      const running = await waitBot("pulled", (b) => b.state === "running");
      expect(running.image).toBe(ref);
      await waitLogs("pulled", "bot up as 65534");
      expect((await logs("pulled", "?build=1")).join("\n")).toContain(`pulling ${ref}`);
      await stopAndRemove("pulled");
      expect(JSON.stringify(await readEvents(server.url, run_id))).not.toContain(registry.password);
      await engine.docker
        .getImage(ref)
        .remove()
        .catch(() => undefined);
    } finally {
      await registry.stop();
    }
  }, 180_000);

  it("custom mode builds the Dockerfile of an uploaded archive and of a git repository", async () => {
    const base = await busyboxImage();
    const project = tempDir("runyard-custom-bot-");
    writeFileSync(join(project, "Dockerfile"), `FROM ${base}\nCOPY run.sh /run.sh\nCMD ["sh", "/run.sh"]\n`);
    writeFileSync(join(project, "run.sh"), 'echo "custom bot from $SOURCE"\nwhile true; do sleep 1; done\n');
    const archive = join(tempDir(), "bot.tar.gz");
    execFileSync("tar", ["-czf", archive, "-C", project, "."]);
    const { readFileSync } = await import("node:fs");
    await startBot({
      name: "from-archive",
      archive: readFileSync(archive).toString("base64"),
      env: { SOURCE: "archive" },
    });
    await waitBot("from-archive", (b) => b.state === "running");
    await waitLogs("from-archive", "custom bot from archive");
    await stopAndRemove("from-archive");

    const repos = tempDir("runyard-custom-git-");
    const bare = seedBareRepo(join(repos, "bot.git"));
    const work = join(repos, "work");
    execFileSync("git", ["clone", "-q", bare, work]);
    mkdirSync(work, { recursive: true });
    writeFileSync(join(work, "Dockerfile"), `FROM ${base}\nCOPY run.sh /run.sh\nCMD ["sh", "/run.sh"]\n`);
    writeFileSync(join(work, "run.sh"), 'echo "custom bot from $SOURCE"\nwhile true; do sleep 1; done\n');
    gitIn(work, "add", ".");
    gitIn(work, "commit", "-qm", "bot");
    gitIn(work, "push", "-q", "origin", "HEAD:main");
    await startBot({ name: "from-git", git: { url: `file://${bare}`, ref: "main" }, env: { SOURCE: "git" } });
    await waitBot("from-git", (b) => b.state === "running");
    await waitLogs("from-git", "custom bot from git");
    expect((await logs("from-git", "?build=1")).join("\n")).toContain("shallow, no submodules");
    await stopAndRemove("from-git");
  }, 180_000);

  it("refuses bad starts with hints, storing nothing", async () => {
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ name: "x" }, "INVALID_INPUT", /no source/],
      [{ name: "x", image: botImage, files: { "a.py": "" } }, "INVALID_INPUT", /more than one source/],
      [{ name: "x", files: { "../evil.py": "" } }, "INVALID_INPUT", /\.\./],
      [{ name: "x", files: { "a.txt": "" } }, "INVALID_INPUT", /language/],
      [{ name: "x", git: { url: "ext::sh -c touch% /tmp/pwned" } }, "INVALID_INPUT", /transport helper/],
      [{ name: "bad name!", image: botImage }, "INVALID_INPUT", /bot name/],
      [
        { name: "x", archive: Buffer.from("not an archive at all, just text").toString("base64") },
        "ARCHIVE_REJECTED",
        /not a tar/,
      ],
    ];
    for (const [body, code, message] of cases) {
      const answer = await api<{ error: { code: string; message: string; hint: string } }>(
        server.url,
        "POST",
        "/api/bots",
        body,
      );
      expect(answer.status, JSON.stringify(body)).toBeGreaterThanOrEqual(400);
      expect(answer.body.error.code, JSON.stringify(answer.body)).toBe(code);
      expect(answer.body.error.message + answer.body.error.hint).toMatch(message);
      expect(answer.body.error.hint.length).toBeGreaterThan(10);
    }
    expect((await api<{ bots: unknown[] }>(server.url, "GET", "/api/bots")).body.bots).toEqual([]);
  }, 60_000);

  it("the orchestrator API's POST /jobs: start, list, status, logs and stop with its own shapes", async () => {
    const job = (data: Record<string, unknown>) =>
      api<{
        status: string;
        job_id: string;
        data: Record<string, unknown>;
        error?: { code: string; hint: string };
      }>(server.url, "POST", "/jobs", { blueprint: "bot_runner", data });
    const started = await job({
      action: "start",
      bot_id: "my-bot",
      deployment_mode: "simple",
      code: 'import os, time\nprint("seed bot", os.environ["GREETING"], flush=True)\nwhile True:\n    time.sleep(1)\n',
      requirements: [],
      env_vars: { GREETING: "hi" },
    });
    expect(started.status).toBe(200);
    expect(started.body).toMatchObject({ status: "success", data: { name: "my-bot", state: "running" } });
    botIds.push(started.body.data.id as string);
    const list = await job({ action: "list" });
    expect((list.body.data.bots as { name: string }[]).map((b) => b.name)).toEqual(["my-bot"]);
    expect((await job({ action: "status", bot_id: "my-bot" })).body.data).toMatchObject({ state: "running" });
    await waitLogs("my-bot", "seed bot hi");
    expect((await job({ action: "logs", bot_id: "my-bot" })).body.data.logs).toContain("seed bot hi");
    const stopped = await job({ action: "stop", bot_id: "my-bot" });
    expect(stopped.body).toMatchObject({ status: "success", data: { state: "stopped" } });
    const invalid = await job({ action: "start", bot_id: "my-bot", deployment_mode: "image" });
    expect(invalid.status).toBe(400);
    expect(invalid.body).toMatchObject({ status: "failure", error: { code: "INVALID_INPUT" } });
    expect(invalid.body.error?.hint).toContain("docker_image");
    const unknown = await job({ action: "status", bot_id: "nope" });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ status: "failure", error: { code: "NOT_FOUND" } });
    const blueprint = await api<{ status: string }>(server.url, "POST", "/jobs", {
      blueprint: "other",
      data: {},
    });
    expect(blueprint.body.status).toBe("failure");
    await api(server.url, "DELETE", "/api/bots/my-bot");
  }, 120_000);
});
