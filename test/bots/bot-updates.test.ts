import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { type BotView, waitBot as waitBotIn } from "../helpers/bots.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { commandImage, removeBotObjects, removeTestObjects, requireDocker } from "../helpers/docker.js";
import {
  api,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * Bot health checks, updates that keep the old version until the new one is healthy, rollback,
 * versions and env per bot: a real server and runners (one per tenant), the real Docker engine,
 * containers on network none (so the HTTP check goes through the container's own network).
 */

const haveDocker = await requireDocker();
const run = `bot-updates-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();

let server: TestServer;
const runners: Proc[] = [];
const botIds: string[] = [];
let alice: string;
let bob: string;
let mallory: string;
const images: Record<string, string> = {};

interface Health {
  status: string;
  failures: number;
  output: string;
  at: string;
}
type Bot = BotView & { health: Health | null; version: number };
interface Version {
  version: number;
  state: string;
  reason: string;
  error: { code: string; message: string } | null;
  summary: Record<string, unknown>;
}

async function token(body: Record<string, string>): Promise<string> {
  const answer = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.token;
}

async function startBot(body: Record<string, unknown>, bearer = alice): Promise<Bot> {
  const answer = await api<{ bot: Bot }>(server.url, "POST", "/api/bots", body, bearer);
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  botIds.push(answer.body.bot.id);
  return answer.body.bot;
}

const waitBot = (name: string, predicate: (bot: Bot) => boolean, timeoutMs = 90_000, bearer = alice) =>
  waitBotIn(server.url, name, predicate as (bot: BotView) => boolean, timeoutMs, bearer) as Promise<Bot>;

async function containersOf(botId: string) {
  return engine.docker.listContainers({ all: true, filters: { label: [`runyard.bot=${botId}`] } });
}

async function logsOf(name: string): Promise<string[]> {
  const answer = await api<{ lines: { text: string }[] }>(
    server.url,
    "GET",
    `/api/bots/${name}/logs`,
    undefined,
    alice,
  );
  expect(answer.status).toBe(200);
  return answer.body.lines.map((line) => line.text);
}

const cliEnv = () => ({ RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: alice });

const upScript = (label: string) =>
  `trap 'exit 0' TERM; echo "${label} up FOO=$FOO token=$TOKEN"; touch /tmp/ready; while true; do sleep 1 & wait $!; done`;

describe.skipIf(!haveDocker)("bot health, safe updates, rollback and env on a real Docker engine", () => {
  beforeAll(async () => {
    images.v1 = await commandImage(`runyard-test-upd-${run}:v1`, upScript("v1"), run);
    images.v3 = await commandImage(`runyard-test-upd-${run}:v3`, upScript("v3"), run);
    images.crash = await commandImage(
      `runyard-test-upd-${run}:crash`,
      'echo "v2 boom: no config file at /etc/bot.toml" >&2; exit 3',
      run,
    );
    images.http = await commandImage(
      `runyard-test-upd-${run}:http`,
      "mkdir -p /tmp/www && echo serving > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
      run,
    );
    server = await startTestServer(tempDir(), {
      RUNYARD_BOT_NETWORK: "none",
      RUNYARD_BOT_MEMORY_MB: "64",
      RUNYARD_MAX_BOTS_PER_USER: "20",
    });
    alice = await token({ kind: "user", name: "alice", tenant_id: "acme" });
    bob = await token({ kind: "user", name: "bob", tenant_id: "acme" });
    mallory = await token({ kind: "user", name: "mallory", tenant_id: "globex" });
    for (const tenant of ["acme", "globex"]) {
      const runnerToken = await token({ kind: "runner", name: `${tenant} runner`, tenant_id: tenant });
      runners.push(
        await startRunner(server.url, runnerToken, {
          id: `${tenant}-${run}`,
          env: { RUNYARD_LOG_LEVEL: process.env.DEBUG_RUNNER ? "info" : "error" },
        }),
      );
    }
  }, 240_000);

  afterAll(async () => {
    for (const runner of runners) await runner.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await removeBotObjects(botIds);
    await removeTestObjects(run);
  }, 60_000);

  it("a command health check: starting until it passes, then running with the probe's output", async () => {
    await startBot({
      name: "health-cmd",
      image: images.v1,
      health: { cmd: "test -f /tmp/ready && echo ready-ok", interval_ms: 1000, timeout_ms: 10_000 },
    });
    const running = await waitBot("health-cmd", (bot) => bot.state === "running" && bot.health !== null);
    expect(running.health).toMatchObject({ status: "healthy", failures: 0, output: "ready-ok" });
    const list = await runCli(["bot", "list"], { env: cliEnv() });
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/health-cmd\s+image\s+running\s+healthy\s+1/);
    const status = await runCli(["bot", "status", "health-cmd"], { env: cliEnv() });
    expect(status.stdout).toContain("last probe:");
    expect(status.stdout).toContain("ready-ok");
  }, 180_000);

  it("a health command that never ends is killed at its timeout, and the bot turns unhealthy", async () => {
    const bot = await startBot({
      name: "health-hang",
      image: images.v1,
      health: { cmd: "sleep 300", interval_ms: 1000, timeout_ms: 1000, retries: 2 },
    });
    const unhealthy = await waitBot("health-hang", (b) => b.state === "unhealthy");
    expect(unhealthy.health?.status).toBe("unhealthy");
    expect(unhealthy.health?.output).toContain("timed out after 1s and was killed");
    // Every probe's `sleep 300` was killed: none lingers in the container.
    const [container] = (await containersOf(bot.id)).filter((c) => c.State === "running");
    const top = (await engine.docker.getContainer(container!.Id).top()) as { Processes: string[][] };
    expect(top.Processes.map((p) => p.join(" ")).filter((line) => line.includes("sleep 300"))).toEqual([]);
  }, 180_000);

  it("an unhealthy bot follows its restart policy: restarted with BOT_UNHEALTHY, then crashed", async () => {
    await startBot({
      name: "health-restart",
      image: images.v1,
      restart: "on-failure",
      max_restarts: 1,
      // A generous timeout: on a loaded engine a docker exec alone can take over a second.
      health: { cmd: "echo nope; exit 1", interval_ms: 1000, timeout_ms: 10_000, retries: 1 },
    });
    const ended = await waitBot("health-restart", (b) => b.state === "crashed", 120_000);
    expect(ended.restarts).toBe(1);
    expect(ended.error?.code).toBe("BOT_RESTART_LOOP");
    const events = await readEvents(server.url, ended.run_id!);
    const restart = events.find((e) => e.type === "bot.state" && e.restarts === 1);
    expect(restart).toMatchObject({ state: "starting", error: { code: "BOT_UNHEALTHY" } });
    expect((restart as { error: { message: string } }).error.message).toContain("nope");
  }, 180_000);

  it("an HTTP health check reaches the port inside a network-none container", async () => {
    await startBot({
      name: "health-http",
      image: images.http,
      // A probe of 10 s, as above: under CI's full suite one of 2 s timed out before its answer.
      health: { http: { port: 8080, path: "/index.html" }, interval_ms: 1000, timeout_ms: 10_000 },
    });
    const running = await waitBot("health-http", (b) => b.state === "running" && b.health !== null);
    expect(running.health?.output).toContain("HTTP 200");
    expect(running.health?.output).toContain("serving");
    await startBot({
      name: "health-http-404",
      image: images.http,
      health: { http: { port: 8080, path: "/nothing" }, interval_ms: 1000, timeout_ms: 10_000, retries: 2 },
    });
    // Unhealthy for its 404, not for a probe that a loaded engine made time out.
    const bad = await waitBot(
      "health-http-404",
      (b) => b.state === "unhealthy" && (b.health?.output ?? "").includes("HTTP"),
    );
    expect(bad.health?.output).toContain("HTTP 404");
  }, 180_000);

  it("bad health input gets a clear error: a negative interval, both checks, a path without /", async () => {
    for (const [health, text] of [
      [{ cmd: "true", interval_ms: -5 }, "interval_ms"],
      [{ cmd: "true", http: { port: 80, path: "/" } }, "exactly one"],
      [{ http: { port: 80, path: "healthz" } }, "starts with /"],
    ] as const) {
      const answer = await api<{ error: { code: string; message: string } }>(
        server.url,
        "POST",
        "/api/bots",
        { name: "bad-health", image: images.v1, health },
        alice,
      );
      expect(answer.status).toBe(400);
      expect(JSON.stringify(answer.body)).toContain(text);
    }
    const cli = await runCli(
      ["bot", "start", "x", "--image", images.v1!, "--health-cmd", "true", "--health-interval", "-3s"],
      {
        env: cliEnv(),
      },
    );
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toContain("--health-interval -3s: expected a duration");
  }, 60_000);

  it("an update whose new container crashes leaves the old one serving and says why; a good one replaces it; rollback returns", async () => {
    const bot = await startBot({ name: "upd", image: images.v1, env: { FOO: "one" } });
    const v1 = await waitBot("upd", (b) => b.state === "running");
    const v1Container = (await containersOf(bot.id)).find((c) => c.State === "running")?.Id;
    expect(v1Container).toBeDefined();

    const failed = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/bots/upd/update",
      { image: images.crash, min_ready_secs: 3 },
      alice,
    );
    expect(failed.status, JSON.stringify(failed.body)).toBe(409);
    expect(failed.body.error.code).toBe("BOT_UPDATE_FAILED");
    expect(failed.body.error.message).toContain("v2 boom: no config file at /etc/bot.toml");
    expect(failed.body.error.message).toContain("version 1 keeps running");
    const still = await api<Bot>(server.url, "GET", "/api/bots/upd", undefined, alice);
    expect(still.body).toMatchObject({ state: "running", version: 1, run_id: v1.run_id });
    const running = (await containersOf(bot.id)).filter((c) => c.State === "running").map((c) => c.Id);
    expect(running).toEqual([v1Container]);

    const cli = await runCli(
      ["bot", "update", "upd", "--image", images.v3!, "-e", "FOO=three", "--min-ready", "2s"],
      {
        env: cliEnv(),
      },
    );
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toContain("version 3 is running");
    const v3 = await api<Bot>(server.url, "GET", "/api/bots/upd", undefined, alice);
    expect(v3.body).toMatchObject({ state: "running", version: 3 });
    expect(v3.body.run_id).not.toBe(v1.run_id);
    await expect
      .poll(async () => (await logsOf("upd")).join("\n"), { timeout: 30_000 })
      .toContain("v3 up FOO=three");
    // The old container is stopped and removed: only the new one is left.
    await expect
      .poll(async () => (await containersOf(bot.id)).map((c) => c.Id).includes(v1Container!), {
        timeout: 60_000,
      })
      .toBe(false);

    const rolled = await api<{ bot: Bot; version: Version }>(
      server.url,
      "POST",
      "/api/bots/upd/rollback",
      { min_ready_secs: 2 },
      alice,
    );
    expect(rolled.status, JSON.stringify(rolled.body)).toBe(200);
    expect(rolled.body.version).toMatchObject({
      version: 4,
      reason: "rollback",
      summary: { rollback_of: 1 },
    });
    await expect
      .poll(async () => (await logsOf("upd")).join("\n"), { timeout: 30_000 })
      .toContain("v1 up FOO=one");

    const versions = await runCli(["bot", "versions", "upd", "--json"], { env: cliEnv() });
    expect(versions.code, versions.stderr).toBe(0);
    const listed = JSON.parse(versions.stdout) as { current: number; versions: Version[] };
    expect(listed.current).toBe(4);
    expect(listed.versions.map((v) => [v.version, v.state, v.reason])).toEqual([
      [4, "live", "rollback"],
      [3, "replaced", "update"],
      [2, "failed", "update"],
      [1, "replaced", "start"],
    ]);
    expect(listed.versions[2]!.error?.code).toBe("BOT_UPDATE_FAILED");
  }, 300_000);

  it("env set (a secret from stdin, shown masked), list and unset restart the bot through the same safe update", async () => {
    await startBot({ name: "envbot", image: images.v1, env: { FOO: "before" } });
    await waitBot("envbot", (b) => b.state === "running");
    const secret = `s3cret-${run}`;
    const set = await runCli(
      ["bot", "env", "set", "envbot", "FOO=after", "--secret", "TOKEN", "--min-ready", "2s"],
      {
        env: cliEnv(),
        input: secret,
      },
    );
    expect(set.code, set.stderr).toBe(0);
    const list = await runCli(["bot", "env", "list", "envbot"], { env: cliEnv() });
    expect(list.stdout).toContain("FOO=after");
    expect(list.stdout).toContain("TOKEN=***  (secret)");
    expect(list.stdout).not.toContain(secret);
    await expect
      .poll(async () => (await logsOf("envbot")).join("\n"), { timeout: 30_000 })
      .toContain("v1 up FOO=after token=***");
    expect((await logsOf("envbot")).join("\n")).not.toContain(secret);
    // The version says what changed by name, from which version, under which limits; never a value.
    const versions = await api<{ versions: Version[] }>(
      server.url,
      "GET",
      "/api/bots/envbot/versions",
      undefined,
      alice,
    );
    expect(versions.body.versions[0]!.summary).toMatchObject({
      from_version: 1,
      env_names: ["FOO", "TOKEN"],
      env_changed: ["FOO"],
      limits: { memory_bytes: 64 * 1024 * 1024 },
    });
    expect(JSON.stringify(versions.body)).not.toContain(secret);
    expect(JSON.stringify(versions.body)).not.toContain(`"after"`);
    const status = await api<{ limits: { memory_bytes: number; cpus: number } }>(
      server.url,
      "GET",
      "/api/bots/envbot",
      undefined,
      alice,
    );
    expect(status.body.limits.memory_bytes).toBe(64 * 1024 * 1024);
    expect(status.body.limits.cpus).toBeGreaterThan(0);
    const unset = await runCli(["bot", "env", "unset", "envbot", "FOO", "--min-ready", "1s"], {
      env: cliEnv(),
    });
    expect(unset.code, unset.stderr).toBe(0);
    const after = await api<{ env: { name: string }[]; version: number }>(
      server.url,
      "GET",
      "/api/bots/envbot/env",
      undefined,
      alice,
    );
    expect(after.body.env.map((e) => e.name)).toEqual(["TOKEN"]);
    expect(after.body.version).toBe(3);
    const badName = await api<{ error: { message: string } }>(
      server.url,
      "PATCH",
      "/api/bots/envbot/env",
      { set: { "1BAD-NAME": "x" } },
      alice,
    );
    expect(badName.status).toBe(400);
    expect(JSON.stringify(badName.body)).toContain("environment variable name");
    const cliBad = await runCli(["bot", "env", "set", "envbot", "NOT-A-NAME=x"], { env: cliEnv() });
    expect(cliBad.code).not.toBe(0);
    expect(cliBad.stderr).toContain("is not an environment variable name");
  }, 240_000);

  it("a member of another tenant, or a teammate, cannot see, update, roll back or read the env of a bot", async () => {
    await startBot({ name: "private", image: images.v1, env: { FOO: "mine" } });
    await waitBot("private", (b) => b.state === "running");
    for (const bearer of [mallory, bob]) {
      for (const [method, path, body] of [
        ["GET", "/api/bots/private/versions", undefined],
        ["GET", "/api/bots/private/env", undefined],
        ["PATCH", "/api/bots/private/env", { set: { FOO: "theirs" } }],
        ["POST", "/api/bots/private/update", { image: images.v3 }],
        ["POST", "/api/bots/private/rollback", {}],
      ] as const) {
        const answer = await api<{ error: { code: string } }>(server.url, method, path, body, bearer);
        expect(answer.status, `${method} ${path}`).toBe(404);
        expect(answer.body.error.code).toBe("NOT_FOUND");
      }
    }
    const mine = await api<{ env: { name: string; value: string }[] }>(
      server.url,
      "GET",
      "/api/bots/private/env",
      undefined,
      alice,
    );
    expect(mine.body.env).toEqual([{ name: "FOO", value: "mine", secret: false, stored: false }]);
  }, 180_000);
});
