import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { pythonBaseImage } from "../helpers/base-images.js";
import { waitBot } from "../helpers/bots.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { busyboxImage, removeBotObjects, requireDocker } from "../helpers/docker.js";
import { untilContainers } from "../helpers/docker-events.js";
import { noAuth } from "../helpers/sandboxed-up.js";
import {
  adminToken,
  api,
  fastTimings,
  freePort,
  isFinal,
  type Proc,
  readEvents,
  startCli,
  submit,
  waitForRun,
} from "../helpers/server.js";

/**
 * Two `runyard up` of other homes on one Docker engine (a staging install beside production):
 * each install owns its containers. Each starts a bot and a Docker step; each is restarted while
 * the other's step runs; every bot is still running in its first container, and every step ran
 * to its end.
 */

const haveDocker = await requireDocker();
const engine = new DockerEngine();

interface Install {
  name: string;
  home: string;
  work: string;
  port: number;
  url: string;
  proc?: Proc;
}

let python: string;
let busybox: string;
const installs: Install[] = [];
const botIds = new Set<string>();
const runIds = new Set<string>();

async function up(install: Install): Promise<void> {
  install.proc = startCli(
    ["up", "--port", String(install.port), "--home", install.home],
    {
      ...noAuth,
      ...fastTimings,
      RUNYARD_ADMIN_TOKEN: adminToken,
      RUNYARD_BOT_NETWORK: "none",
      RUNYARD_BOT_BASE_IMAGE_PYTHON: python,
    },
    install.work,
  );
  await install.proc.waitFor("local runner connected", 120_000);
}

async function restart(install: Install): Promise<void> {
  await install.proc?.kill();
  await up(install);
}

async function makeInstall(name: string): Promise<Install> {
  const port = await freePort();
  const install = {
    name,
    home: tempDir(),
    work: tempDir("runyard-work-"),
    port,
    url: `http://127.0.0.1:${port}`,
  };
  installs.push(install);
  await up(install);
  return install;
}

/**
 * The local runner's id, as `GET /api/runners` shows it once it lists one runner connected. Read
 * until it does (30 s at most): the list has no event to wait on, and on a machine with two busy
 * loops beside the suite it still listed none when `up` had printed its runner connected (run G).
 */
async function localRunner(install: Install): Promise<string> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const { body } = await api<Array<{ id: string; status: string }>>(install.url, "GET", "/api/runners");
    const online = body.filter((runner) => runner.status === "connected");
    if (online.length === 1 || Date.now() > deadline) {
      expect(online).toHaveLength(1);
      return online[0]!.id;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** Starts a simple bot as a user types it, and answers its id and running container. */
async function startBot(install: Install, name: string): Promise<{ id: string; container: string }> {
  const dir = tempDir("runyard-install-bot-");
  const file = join(dir, "bot.py");
  writeFileSync(file, 'import time\nprint("bot up", flush=True)\nwhile True:\n    time.sleep(1)\n');
  const started = await runCli(["bot", "start", name, "--simple", file], {
    env: { ...noAuth, RUNYARD_SERVER_URL: install.url, RUNYARD_TOKEN: adminToken },
  });
  expect(started.code, started.stderr).toBe(0);
  const bot = await waitBot(install.url, name, (view) => view.state === "running", 120_000);
  botIds.add(bot.id);
  return { id: bot.id, container: await botContainer(bot.id) };
}

async function botContainer(botId: string): Promise<string> {
  const [container] = await engine.docker.listContainers({ filters: { label: [`runyard.bot=${botId}`] } });
  if (!container) throw new Error(`bot ${botId} has no running container`);
  return container.Id;
}

/** A Docker step that runs until the test creates /tmp/go in its container, and its container. */
async function startStep(install: Install): Promise<{ runId: string; container: string }> {
  const runId = await submit(
    install.url,
    `name: held-step
inventory:
  hosts:
    box:
      executor: docker
      image: ${busybox}
steps:
  - name: held
    action: shell.run
    args:
      shell: sh
      script: |
        while [ ! -e /tmp/go ]; do sleep 0.1; done
        echo released
`,
  );
  runIds.add(runId);
  // Docker says when the run's container starts.
  const container = await untilContainers(
    engine.docker,
    `runyard.run=${runId}`,
    ["start"],
    ([first]) => (first?.State === "running" ? first.Id : undefined),
    `no container of run ${runId} ran`,
    60_000,
  );
  return { runId, container };
}

function containersOf(runId: string) {
  return engine.docker.listContainers({ all: true, filters: { label: [`runyard.run=${runId}`] } });
}

/** Lets the held step end, and answers the run's status and its step's output. */
async function release(install: Install, step: { runId: string; container: string }) {
  const exec = await engine.docker.getContainer(step.container).exec({ Cmd: ["touch", "/tmp/go"] });
  await exec.start({});
  const run = await waitForRun(install.url, step.runId, isFinal);
  const output = (await readEvents(install.url, step.runId))
    .flatMap((event: RunEvent) => (event.type === "step.output" ? [event.data] : []))
    .join("");
  return { status: run.status, output };
}

async function state(container: string): Promise<{ running: boolean; labels: Record<string, string> }> {
  const info = await engine.docker.getContainer(container).inspect();
  return { running: info.State.Running, labels: info.Config.Labels };
}

describe.skipIf(!haveDocker)("two runyard up on one Docker engine", () => {
  beforeAll(async () => {
    [python, busybox] = await Promise.all([pythonBaseImage(), busyboxImage()]);
  }, 240_000);

  afterAll(async () => {
    for (const install of installs) await install.proc?.kill();
    for (const botId of botIds) {
      for (const c of await engine.docker.listContainers({
        all: true,
        filters: { label: [`runyard.bot=${botId}`] },
      }))
        await engine.remove(c.Id);
    }
    for (const runId of runIds) for (const c of await containersOf(runId)) await engine.remove(c.Id);
    await removeBotObjects(botIds);
  }, 120_000);

  it("never touch each other's bots or steps, across restarts of either", async () => {
    const production = await makeInstall("production");
    const staging = await makeInstall("staging");
    const productionRunner = await localRunner(production);
    const stagingRunner = await localRunner(staging);
    expect(productionRunner).not.toBe(stagingRunner);

    const productionBot = await startBot(production, "prod-bot");
    const stagingBot = await startBot(staging, "staging-bot");
    const productionLabels = (await state(productionBot.container)).labels;
    const stagingLabels = (await state(stagingBot.container)).labels;
    expect(productionLabels["runyard.runner"]).toBe(productionRunner);
    expect(stagingLabels["runyard.runner"]).toBe(stagingRunner);
    expect(productionLabels["runyard.install"]).toMatch(/^[0-9a-f]{16}$/);
    expect(stagingLabels["runyard.install"]).toMatch(/^[0-9a-f]{16}$/);
    expect(stagingLabels["runyard.install"]).not.toBe(productionLabels["runyard.install"]);

    // Staging restarts while production's step runs: it takes nothing of production's.
    const productionStep = await startStep(production);
    expect((await state(productionStep.container)).labels).toMatchObject({
      "runyard.runner": productionRunner,
      "runyard.install": productionLabels["runyard.install"],
    });
    await restart(staging);
    expect(await localRunner(staging)).toBe(stagingRunner);
    expect((await state(productionStep.container)).running).toBe(true);
    expect(await release(production, productionStep)).toEqual({ status: "success", output: "released\n" });

    // And production restarts while staging's step runs.
    const stagingStep = await startStep(staging);
    await restart(production);
    expect(await localRunner(production)).toBe(productionRunner);
    expect((await state(stagingStep.container)).running).toBe(true);
    expect(await release(staging, stagingStep)).toEqual({ status: "success", output: "released\n" });

    // Every bot runs on in the container it started in, each adopted by its own install.
    for (const [install, bot, name] of [
      [production, productionBot, "prod-bot"],
      [staging, stagingBot, "staging-bot"],
    ] as const) {
      const view = await waitBot(install.url, name, (b) => b.state === "running");
      expect(view.restarts).toBe(0);
      expect(await botContainer(bot.id)).toBe(bot.container);
      expect((await state(bot.container)).running).toBe(true);
    }
  }, 600_000);
});
