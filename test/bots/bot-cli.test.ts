import { execFileSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { pythonBaseImage } from "../helpers/base-images.js";
import { type CliResult, runCli, tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  commandImage as commandImageOf,
  removeBotObjects,
  removeTestObjects,
  requireDocker,
} from "../helpers/docker.js";
import {
  adminToken,
  api,
  type Proc,
  runnerToken,
  startCli,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * `runyard bot` as seed 001's users type it (issue 10, item 6): the built CLI against a real
 * server, runner and Docker engine, every deploy mode, logs, status, a crash, a failing build,
 * seed 001's AVTOMATIKA_* names, and bad input refused with hints.
 */

const haveDocker = await requireDocker();
const run = `bot-cli-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();
const botToken = `123456:ABC-cli-${run}`;

let server: TestServer;
let runner: Proc;
const botIds = new Set<string>();
const runnerId = `bot-cli-runner-${run}`;
let cliEnv: Record<string, string>;

function bot(
  args: string[],
  options: { env?: Record<string, string>; input?: string; cwd?: string } = {},
): Promise<CliResult> {
  return runCli(["bot", ...args], {
    env: { ...cliEnv, ...options.env },
    ...(options.input !== undefined ? { input: options.input } : {}),
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
}

/** Notes a bot's id for cleanup (its image is named after it) and answers its status. */
async function status(name: string): Promise<Record<string, unknown> & { id: string; state: string }> {
  const answer = await api<Record<string, unknown> & { id: string; state: string }>(
    server.url,
    "GET",
    `/api/bots/${name}`,
  );
  expect(answer.status, JSON.stringify(answer.body)).toBe(200);
  botIds.add(answer.body.id);
  return answer.body;
}

async function containerOf(name: string): Promise<string> {
  const { id } = await status(name);
  const [container] = await engine.docker.listContainers({ filters: { label: [`runyard.bot=${id}`] } });
  if (!container) throw new Error(`bot ${name} has no running container`);
  return container.Id;
}

/** A test image `FROM` the busybox test image with a command: seed 001's image mode. */
const commandImage = (tag: string, script: string) => commandImageOf(tag, script, run);

/** Ends and forgets the bot with the CLI: `rm` stops a live one first. */
async function remove(name: string): Promise<void> {
  const { id } = await status(name);
  const removed = await bot(["rm", name]);
  expect(removed.stderr).toBe("");
  expect(removed.stdout).toBe(`bot ${name} removed\n`);
  // Its container is gone with it.
  expect(
    await engine.docker.listContainers({ all: true, filters: { label: [`runyard.bot=${id}`] } }),
  ).toEqual([]);
}

/**
 * SIGTERM, then SIGKILL if it has not exited in 20 s. A server or runner told to stop while a bot
 * lives (a test that failed before removing it) lets the bot go on, as it should, but its process
 * may stay up on the bot's timers; the cleanup must not hang on it. The exit ends the wait (and
 * its timer) at once.
 */
async function stopProcess(proc: Proc): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    proc.kill().then(() => true),
    new Promise<boolean>((resolve) => {
      timer = setTimeout(() => resolve(false), 20_000);
    }),
  ]);
  clearTimeout(timer);
  if (!exited) await proc.kill("SIGKILL");
}

const foreverShell = 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done';

describe.skipIf(!haveDocker)("runyard bot against a real server, runner and Docker engine", () => {
  beforeAll(async () => {
    const python = await pythonBaseImage();
    server = await startTestServer(tempDir(), { RUNYARD_BOT_NETWORK: "none" });
    cliEnv = { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: adminToken };
    runner = await startRunner(server.url, await runnerToken(server.url), {
      id: runnerId,
      env: { RUNYARD_BOT_BASE_IMAGE_PYTHON: python },
    });
  }, 240_000);

  afterAll(async () => {
    if (runner) await stopProcess(runner);
    if (server) await stopProcess(server.proc);
    // Every container this file's runner made (a runner that shuts down leaves its bots' containers
    // for the next one to adopt), then each bot's image.
    const containers = await engine.docker.listContainers({
      all: true,
      filters: { label: [`runyard.runner=${runnerId}`] },
    });
    for (const c of containers) {
      if (c.Labels["runyard.bot"]) botIds.add(c.Labels["runyard.bot"]);
      await engine.remove(c.Id);
    }
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 120_000);

  it("the avtomatika-bot CLI's quick start: the echo bot from a file with -e, then list, logs and stop", async () => {
    const dir = tempDir("runyard-echo-bot-");
    const file = join(dir, "echo_bot.py");
    writeFileSync(
      file,
      'import os, time\nprint("echo bot up, token", os.environ["BOT_TOKEN"], flush=True)\nwhile True:\n    time.sleep(1)\n',
    );
    const started = await bot(["start", "echo-bot", "--simple", file, "-e", `BOT_TOKEN=${botToken}`]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("bot echo-bot (simple) submitted");
    // The build's progress was shown live, and the token never: runyard masks it.
    expect(started.stdout).toMatch(/^build \| .*FROM runyard-test-python/m);
    expect(started.stdout).toContain("bot echo-bot is running");
    expect(started.stdout).toContain("runyard bot logs echo-bot -f");
    expect(started.stdout + started.stderr).not.toContain(botToken);

    const list = await bot(["list"]);
    expect(list.code).toBe(0);
    const [header, row] = list.stdout.trim().split("\n");
    expect(header).toMatch(
      /^NAME\s+MODE\s+STATE\s+HEALTH\s+VERSION\s+UPTIME\s+RESTARTS\s+MEMORY\s+CPU\s+IMAGE$/,
    );
    expect(row).toMatch(/^echo-bot\s+simple\s+running\s+\S+\s+\d+\s+\d+s\s+0\s+/);

    const logs = await bot(["logs", "echo-bot"]);
    expect(logs.code).toBe(0);
    expect(logs.stdout).toBe("echo bot up, token ***\n");

    const stopped = await bot(["stop", "echo-bot"]);
    expect(stopped.code).toBe(0);
    expect(stopped.stdout).toBe("bot echo-bot stopped\n");
    expect((await bot(["list"])).stdout).toMatch(/^echo-bot\s+simple\s+stopped\s+-/m);
    await remove("echo-bot");
    expect((await bot(["list"])).stdout).toBe(
      "no bots yet; start one with `runyard bot start NAME --simple bot.py`\n",
    );
  }, 180_000);

  it("several files by base name with --entrypoint, as the avtomatika-bot FAQ sends bot.py handlers.py utils.py", async () => {
    const dir = tempDir("runyard-multi-bot-");
    mkdirSync(join(dir, "lib"));
    writeFileSync(
      join(dir, "bot.py"),
      "import handlers, utils, time\nprint(handlers.greet(utils.NAME), flush=True)\nwhile True:\n    time.sleep(1)\n",
    );
    writeFileSync(join(dir, "lib", "handlers.py"), 'def greet(name):\n    return f"hello from {name}"\n');
    writeFileSync(join(dir, "lib", "utils.py"), 'NAME = "utils"\n');
    const started = await bot(
      ["start", "multi", "--simple", "bot.py", "lib/handlers.py", "lib/utils.py", "--entrypoint", "bot.py"],
      { cwd: dir },
    );
    expect(started.code, started.stderr).toBe(0);
    // The bot's first output shows during the start's check, prefixed by its name.
    expect(started.stdout).toContain("multi | hello from utils");
    expect((await bot(["logs", "multi"])).stdout).toBe("hello from utils\n");
    await remove("multi");
  }, 180_000);

  it("--custom DIR packs the folder without what its .dockerignore names and builds its Dockerfile", async () => {
    const dir = tempDir("runyard-custom-cli-");
    writeFileSync(
      join(dir, "Dockerfile"),
      `FROM ${await busyboxImage()}\nCOPY . /app\nCMD ["sh", "/app/run.sh"]\n`,
    );
    writeFileSync(join(dir, ".dockerignore"), "# local only\nsecret.txt\n*.log\ncache/\n!cache/keep.txt\n");
    writeFileSync(
      join(dir, "run.sh"),
      `echo "files: $(cd /app && find . -type f | sort | tr '\\n' ' ')"\n${foreverShell}\n`,
    );
    writeFileSync(join(dir, "secret.txt"), "do not ship\n");
    writeFileSync(join(dir, "debug.log"), "noise\n");
    mkdirSync(join(dir, "cache"));
    writeFileSync(join(dir, "cache", "big.bin"), "x");
    writeFileSync(join(dir, "cache", "keep.txt"), "kept\n");
    const started = await bot(["start", "custom-dir", "--custom", dir, "--check", "0"]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stderr).toContain("bot custom-dir (custom) submitted");
    const followed = startCli(["bot", "logs", "custom-dir", "-f"], cliEnv);
    const line = await followed.waitFor(/files: [^\n]*\n/, 30_000);
    expect(line).toBe("files: ./.dockerignore ./Dockerfile ./cache/keep.txt ./run.sh \n");
    await followed.kill("SIGINT");
    expect(await followed.exited).toBe(0);
    await remove("custom-dir");
  }, 180_000);

  it("--image runs a ready image; status shows its fields, logs --tail the last lines", async () => {
    const image = await commandImage(
      `runyard-test-cli-bot-${run}:1`,
      `echo one; echo two; echo three; ${foreverShell}`,
    );
    const started = await bot([
      "start",
      "pictured",
      "--image",
      image,
      "--restart",
      "on-failure",
      "--lifetime",
      "600",
    ]);
    expect(started.code, started.stderr).toBe(0);
    expect(started.stdout).toContain(`bot pictured is running (image ${image})`);

    const json = await bot(["status", "pictured", "--json"]);
    const view = JSON.parse(json.stdout) as Record<string, unknown>;
    expect(view).toMatchObject({
      name: "pictured",
      mode: "image",
      state: "running",
      image,
      restarts: 0,
      restart_policy: "on-failure:5",
      exit_code: null,
      oom_killed: false,
      error: null,
      runner_id: runnerId,
    });
    expect(view.uptime_secs).toEqual(expect.any(Number));
    const expires = Date.parse(view.expires_at as string) - Date.now();
    expect(expires).toBeGreaterThan(500_000);
    expect(expires).toBeLessThanOrEqual(600_000);

    const human = await bot(["status", "pictured"]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^bot pictured\n {2}state: +running\n {2}mode: +image\n/);
    expect(human.stdout).toMatch(/ {2}restarts: +0 \(policy on-failure:5\)\n/);
    expect(human.stdout).toMatch(/ {2}exit code: +-\n {2}OOM killed: +no\n/);
    expect(human.stdout).toMatch(/ {2}expires: +\S+ \(in (9|10)m \d+s\)\n/);

    await containerOf("pictured");
    const tail = await bot(["logs", "pictured", "--tail", "2"]);
    expect(tail.stdout).toBe("two\nthree\n");
    const since = await bot(["logs", "pictured", "--since", "10m", "--json"]);
    expect(
      since.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { text: string }).text),
    ).toEqual(["one", "two", "three"]);
    expect((await bot(["logs", "pictured", "--since", "2030-01-01T00:00:00Z"])).stdout).toBe("");
    const pulled = await bot(["logs", "pictured", "--build"]);
    expect(pulled.stdout).toContain(image);
    await remove("pictured");
  }, 180_000);

  it("logs -f prints what is there, then each line as the bot prints it, and ends with the bot", async () => {
    const dir = tempDir("runyard-ticker-");
    // The bot prints a counter each time the test drops a file into its /tmp: the test decides when.
    writeFileSync(
      join(dir, "ticker.py"),
      [
        "import os, time",
        'print("ready", flush=True)',
        "n = 0",
        "while True:",
        '    if os.path.exists("/tmp/go"):',
        '        os.remove("/tmp/go")',
        "        n += 1",
        '        print(f"tick {n}", flush=True)',
        "    time.sleep(0.05)",
        "",
      ].join("\n"),
    );
    const started = await bot(["start", "ticker", "--simple", join(dir, "ticker.py"), "--check", "0"]);
    expect(started.code, started.stderr).toBe(0);
    const container = await containerOf("ticker");
    const followed = startCli(["bot", "logs", "ticker", "-f"], cliEnv);
    await followed.waitFor("ready\n", 30_000);
    expect(followed.output()).not.toContain("tick 1");
    execFileSync("docker", ["exec", container, "touch", "/tmp/go"]);
    await followed.waitFor("tick 1\n", 30_000);
    execFileSync("docker", ["exec", container, "touch", "/tmp/go"]);
    await followed.waitFor("tick 2\n", 30_000);
    // The bot's end ends the follow by itself.
    expect((await bot(["stop", "ticker"])).code).toBe(0);
    expect(await followed.exited).toBe(0);
    expect(followed.output()).toBe("ready\ntick 1\ntick 2\n");
    await remove("ticker");
  }, 180_000);

  it("a bot that crashes at once makes start exit 1 with its exit code and last logs", async () => {
    const dir = tempDir("runyard-crasher-");
    writeFileSync(
      join(dir, "bot.py"),
      'import sys\nprint("connecting", flush=True)\nprint("Unauthorized: bad token", file=sys.stderr, flush=True)\nsys.exit(1)\n',
    );
    const started = await bot(["start", "crasher", "--simple", join(dir, "bot.py"), "--check", "30"]);
    expect(started.code).toBe(1);
    expect(started.stderr).toContain("bot crasher crashed (exit 1)");
    expect(started.stderr).toContain("runyard bot logs crasher --previous");
    expect(started.stderr).toMatch(/last logs:\n( {2}.*\n)* {2}Unauthorized: bad token\n/);
    expect(started.stdout).not.toContain("is running");

    const previous = await bot(["logs", "crasher", "--previous"]);
    expect(previous.stdout.trim().split("\n").sort()).toEqual(["Unauthorized: bad token", "connecting"]);
    const human = await bot(["status", "crasher"]);
    expect(human.stdout).toMatch(/ {2}state: +crashed\n/);
    expect(human.stdout).toMatch(/ {2}exit code: +1\n/);
    expect(human.stdout).toContain("last logs of the previous container:\n");
    expect(human.stdout).toContain("    Unauthorized: bad token\n");
    // Stopping an ended bot is refused with the way out.
    const stop = await bot(["stop", "crasher"]);
    expect(stop.code).toBe(2);
    expect(stop.stderr).toContain("bot crasher is crashed, not running");
    expect(stop.stderr).toContain("hint: ");
    await remove("crasher");
  }, 180_000);

  it("a -r requirement reaches the build: offline, pip fails, start ends BOT_BUILD_FAILED and logs --build shows why", async () => {
    const dir = tempDir("runyard-reqs-");
    writeFileSync(join(dir, "echo_bot.py"), "import aiogram\n");
    const started = await bot(
      [
        "start",
        "needs-aiogram",
        "--simple",
        join(dir, "echo_bot.py"),
        "-r",
        "aiogram>=3.0",
        "-e",
        "BOT_TOKEN",
      ],
      { env: { BOT_TOKEN: botToken } },
    );
    expect(started.code).toBe(1);
    expect(started.stderr).toContain("bot needs-aiogram crashed");
    expect(started.stderr).toContain("error: BOT_BUILD_FAILED: ");
    expect(started.stderr).toMatch(/hint: .*build/);
    const build = await bot(["logs", "needs-aiogram", "--build"]);
    expect(build.stdout).toContain("RUN pip install --no-cache-dir -r requirements.txt");
    expect(build.stdout).toMatch(/pip: not found|No module named pip|Could not find a version/);
    expect((await status("needs-aiogram")).state).toBe("crashed");
    await remove("needs-aiogram");
  }, 180_000);

  it("takes the avtomatika-bot CLI's AVTOMATIKA_URL and AVTOMATIKA_TOKEN for the server and token", async () => {
    const seedEnv = {
      RUNYARD_SERVER_URL: "",
      RUNYARD_TOKEN: "",
      AVTOMATIKA_URL: server.url,
      AVTOMATIKA_TOKEN: adminToken,
    };
    const list = await runCli(["bot", "list"], { env: seedEnv });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^no bots yet/);
    const wrong = await runCli(["bot", "list"], { env: { ...seedEnv, AVTOMATIKA_TOKEN: "ryt_not_a_token" } });
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("hint: The server refused this token");
    const missing = await runCli(["bot", "status", "nope"], { env: seedEnv });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(
      /^error: you have no bot named nope\nhint: `runyard bot list` shows your bots/,
    );
  }, 60_000);
});

describe("runyard bot refuses bad input with a hint, before it sends anything", () => {
  it.each([
    [["start", "x"], "bot x has no source"],
    [["start", "x", "--simple", "a.py", "--image", "busybox"], "give one source, not --simple and --image"],
    [["start", "x", "--simple", "missing.py"], "--simple missing.py: no such file"],
    [["start", "x", "--simple", "test"], "--simple test is a folder"],
    [
      ["start", "x", "--simple", "package.json", "bin/../package.json"],
      "--simple package.json and bin/../package.json have the same name, package.json",
    ],
    [
      ["start", "x", "--simple", "package.json", "--entrypoint", "bot.py"],
      "--entrypoint bot.py is not one of the --simple files",
    ],
    [
      ["start", "x", "--image", "busybox", "--registry-user", "me"],
      "--registry-user needs --registry-password-stdin",
    ],
    [
      ["start", "x", "--image", "busybox", "--registry-password-stdin"],
      "--registry-password-stdin needs --registry-user",
    ],
    [
      ["start", "x", "--simple", "package.json", "--registry-user", "me"],
      "--registry-user: registry flags go with --image",
    ],
    [["start", "x", "--image", "busybox", "-r", "aiogram"], "-r goes with --simple"],
    [
      ["start", "x", "--image", "busybox", "-e", "1BAD=x"],
      '-e 1BAD=x: "1BAD" is not an environment variable name',
    ],
    [
      ["start", "x", "--image", "busybox", "-e", "RUNYARD_TEST_UNSET_VAR"],
      "-e RUNYARD_TEST_UNSET_VAR: RUNYARD_TEST_UNSET_VAR is not set in this shell",
    ],
    [
      ["start", "x", "--image", "busybox", "--restart", "sometimes"],
      "--restart sometimes: expected no, on-failure or always",
    ],
    [
      ["start", "x", "--image", "busybox", "--max-restarts", "-1"],
      "--max-restarts -1: expected a whole number",
    ],
    [["start", "x", "--custom", "no/such/dir"], "--custom no/such/dir: no such folder or file"],
    [["start", "x", "--custom", "src"], "src has no Dockerfile at its top"],
    [["start", "x", "--custom", "src", "--ref", "main"], "--ref main goes with a git URL"],
    [["logs", "x", "--since", "yesterday"], "--since yesterday: expected a duration"],
    [["logs", "x", "--tail", "0"], "--tail 0: expected a whole number of lines"],
    [["logs", "x", "--previous", "-f"], "--previous shows lines kept from an ended container"],
  ])("bot %j", async (args, message) => {
    // No server listens here: each refusal happens before any request.
    const result = await runCli(["bot", ...args], { env: { RUNYARD_SERVER_URL: "http://127.0.0.1:9" } });
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: ${message}`);
    expect(result.stderr).toMatch(/\nhint: \S.{10,}\n$/);
  });
});
