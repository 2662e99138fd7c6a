import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { type BotView, waitBot as waitBotIn, waitBotLogs } from "../helpers/bots.js";
import { tempDir } from "../helpers/cli.js";
import {
  busyboxImage,
  removeTestObjects,
  requireDocker,
  testLabel,
  testRunLabel,
} from "../helpers/docker.js";
import { containersGone } from "../helpers/docker-events.js";
import {
  api,
  freePort,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "../helpers/server.js";

/**
 * After a server or runner restart, Docker's labels and the store agree again (issue 10):
 * a bot outlives a killed server and a killed runner (whose next life adopts its container),
 * a container whose bot was stopped meanwhile is removed, and one that died meanwhile ends
 * its bot `crashed` with its exit code.
 */

const haveDocker = await requireDocker();
const run = `reconcile-${process.pid}-${Date.now().toString(36)}`;
const engine = new DockerEngine();
const runnerId = `reconcile-runner-${run}`;

let server: TestServer;
let serverHome: string;
let port: number;
let runner: Proc | undefined;
let runnerHome: string;
let token: string;
let image: string;
const botIds: string[] = [];

const serverEnv = { RUNYARD_BOT_NETWORK: "none" };

async function startOurRunner(): Promise<Proc> {
  runner = await startRunner(server.url, token, { id: runnerId, env: { RUNYARD_HOME: runnerHome } });
  return runner;
}

const waitBot = (name: string, predicate: (bot: BotView) => boolean) =>
  waitBotIn(server.url, name, predicate);

async function containerOf(botId: string): Promise<{ Id: string; State: string } | undefined> {
  const [container] = await engine.docker.listContainers({
    all: true,
    filters: { label: [`runyard.bot=${botId}`] },
  });
  return container;
}

async function startBot(name: string): Promise<{ id: string; containerId: string }> {
  const answer = await api<{ bot: BotView }>(server.url, "POST", "/api/bots", { name, image });
  expect(answer.status, JSON.stringify(answer.body)).toBe(202);
  botIds.push(answer.body.bot.id);
  await waitBot(name, (bot) => bot.state === "running");
  const container = await containerOf(answer.body.bot.id);
  expect(container?.State).toBe("running");
  return { id: answer.body.bot.id, containerId: container!.Id };
}

describe.skipIf(!haveDocker)("bots across server and runner restarts", () => {
  beforeAll(async () => {
    const base = await busyboxImage();
    const dir = tempDir("runyard-reconcile-image-");
    // Prints a line whenever the test creates /tmp/ping-N in it: output after a restart proves
    // the output is followed again, without waiting on time.
    writeFileSync(
      join(dir, "Dockerfile"),
      `FROM ${base}\nCMD ["sh", "-c", "trap 'exit 0' TERM; echo started; n=0; while true; do if [ -e /tmp/ping-$n ]; then echo pong-$n; n=$((n+1)); fi; sleep 0.1 & wait $!; done"]\n`,
    );
    image = `runyard-test-reconcile-${run}:1`;
    await engine.build(dir, image, () => {}, { [testLabel]: "1", [testRunLabel]: run });
    serverHome = tempDir();
    port = await freePort();
    server = await startTestServer(serverHome, serverEnv, port);
    token = await runnerToken(server.url);
    runnerHome = tempDir();
    await startOurRunner();
  }, 120_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    for (const id of botIds) {
      const container = await containerOf(id);
      if (container) await engine.remove(container.Id);
    }
    await removeTestObjects(run);
  }, 60_000);

  /** Makes the bot print `pong-N` (its Nth ping) and waits for the line in its logs. */
  async function ping(name: string, containerId: string, n: number): Promise<void> {
    const exec = await engine.docker.getContainer(containerId).exec({ Cmd: ["touch", `/tmp/ping-${n}`] });
    await exec.start({});
    const lines = await waitBotLogs(server.url, name, `pong-${n}`, 20_000);
    expect(lines).toContain(`pong-${n}`);
  }

  it("a bot outlives a killed server: the restarted server sees it running, follows its output and stops it", async () => {
    const { id, containerId } = await startBot("survivor");
    await ping("survivor", containerId, 0);
    await server.proc.kill("SIGKILL");
    server = await startTestServer(serverHome, serverEnv, port);
    const after = await waitBot("survivor", (bot) => bot.state === "running");
    expect(after.restarts).toBe(0);
    expect((await containerOf(id))?.Id).toBe(containerId);
    await ping("survivor", containerId, 1);
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/survivor/stop");
    expect(stopped.body.state).toBe("stopped");
    expect(await containerOf(id)).toBeUndefined();
    await api(server.url, "DELETE", "/api/bots/survivor");
  }, 120_000);

  it("a killed runner's next life adopts its bot's running container: same container, no restart", async () => {
    const { id, containerId } = await startBot("adopted");
    await runner!.kill("SIGKILL");
    expect((await containerOf(id))?.State).toBe("running");
    await startOurRunner();
    const after = await waitBot("adopted", (bot) => bot.state === "running" && bot.runner_id === runnerId);
    expect(after.restarts).toBe(0);
    expect((await containerOf(id))?.Id).toBe(containerId);
    await ping("adopted", containerId, 0);
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/adopted/stop");
    expect(stopped.body.state).toBe("stopped");
    expect(await containerOf(id)).toBeUndefined();
    await api(server.url, "DELETE", "/api/bots/adopted");
  }, 120_000);

  it("SIGTERM stops a runner and a server at once while a bot lives; the bot runs on and is adopted", async () => {
    const { id, containerId } = await startBot("graceful");
    // 143: the exit code of a graceful stop on SIGTERM (128 + 15), as for any runyard daemon.
    expect(await runner!.kill("SIGTERM")).toBe(143);
    expect(await server.proc.kill("SIGTERM")).toBe(143);
    expect((await containerOf(id))?.State).toBe("running");
    server = await startTestServer(serverHome, serverEnv, port);
    await startOurRunner();
    const after = await waitBot("graceful", (bot) => bot.state === "running" && bot.runner_id === runnerId);
    expect(after.restarts).toBe(0);
    expect((await containerOf(id))?.Id).toBe(containerId);
    await ping("graceful", containerId, 0);
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/graceful/stop");
    expect(stopped.body.state).toBe("stopped");
    await api(server.url, "DELETE", "/api/bots/graceful");
  }, 120_000);

  it("a bot stopped while its runner was away has its container removed when the runner comes back", async () => {
    const { id } = await startBot("orphan");
    await runner!.kill("SIGKILL");
    const stopped = await api<BotView>(server.url, "POST", "/api/bots/orphan/stop");
    expect(stopped.status, JSON.stringify(stopped.body)).toBe(200);
    expect(stopped.body.state).toBe("stopped");
    // Its container still runs on the runner's Docker: nobody there to stop it yet.
    expect((await containerOf(id))?.State).toBe("running");
    await startOurRunner();
    await containersGone(engine.docker, `runyard.bot=${id}`, "the orphaned container was never removed");
    await api(server.url, "DELETE", "/api/bots/orphan");
  }, 120_000);

  it("a runner comes back removing its own install's orphans only: another install's bot containers under its id and those that name no install run on", async () => {
    const { id } = await startBot("own-orphan");
    await runner!.kill("SIGKILL");
    await api<BotView>(server.url, "POST", "/api/bots/own-orphan/stop");
    // Another install on this engine whose runner has the same id, and a container made before
    // containers named their install: bots this server has never heard of.
    const strangers: string[] = [];
    for (const install of ["0123456789abcdef", undefined]) {
      const container = await engine.docker.createContainer({
        Image: image,
        Labels: {
          "runyard.managed": "1",
          "runyard.bot": `bot_stranger_${strangers.length}_${run}`,
          "runyard.runner": runnerId,
          [testLabel]: "1",
          [testRunLabel]: run,
          ...(install ? { "runyard.install": install } : {}),
        },
      });
      await container.start();
      strangers.push(container.id);
    }
    await startOurRunner();
    // Its own install's orphan goes; the strangers are no more this server's to judge than to adopt.
    await containersGone(engine.docker, `runyard.bot=${id}`, "the orphaned container was never removed");
    for (const stranger of strangers) {
      expect((await engine.docker.getContainer(stranger).inspect()).State.Running).toBe(true);
      await engine.remove(stranger);
    }
    await api(server.url, "DELETE", "/api/bots/own-orphan");
  }, 120_000);

  it("a container that died while its runner was away ends its bot crashed, with its exit code and last lines", async () => {
    const { id, containerId } = await startBot("died-away");
    await runner!.kill("SIGKILL");
    await engine.docker.getContainer(containerId).kill({ signal: "SIGKILL" });
    await startOurRunner();
    const crashed = await waitBot("died-away", (bot) => bot.state === "crashed");
    expect(crashed.exit_code).toBe(137);
    expect(crashed.last_logs).toContain("started");
    expect(await containerOf(id)).toBeUndefined();
    await api(server.url, "DELETE", "/api/bots/died-away");
  }, 120_000);
});
