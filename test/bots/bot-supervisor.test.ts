import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type BotStateChange,
  BotSupervisor,
  type RestartPolicy,
  restartLoopCode,
} from "../../src/bots/bot-supervisor.js";
import type { BotState } from "../../src/core/bot-states.js";
import { defaultContainerLimits } from "../../src/exec/docker/container-spec.js";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
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
// sh as PID 1 ignores SIGTERM unless it traps it; short sleeps let the trap run at once, so a stop
// ends in well under its grace instead of waiting for the SIGKILL.
const untilTerm = "trap 'exit 0' TERM";
const forever = "while true; do sleep 0.1; done";

/** A supervisor of a busybox bot with its own id, recording every state it reports. */
function supervise(
  engine: DockerEngine,
  image: string,
  script: string,
  options: { restartPolicy?: RestartPolicy; lifetimeMs?: number } = {},
) {
  serial += 1;
  const botId = `sv-${run}-${serial}`;
  const changes: BotStateChange[] = [];
  const waiters: { match: (change: BotStateChange) => boolean; resolve: (change: BotStateChange) => void }[] =
    [];
  const settings: ConstructorParameters<typeof BotSupervisor>[0] = {
    engine,
    bot: {
      id: botId,
      image,
      env: {},
      cmd: ["sh", "-c", script],
      limits: defaultContainerLimits,
      ownership: {
        botId,
        tenantId: "acme",
        owner: "alice",
        expiresAt: new Date(Date.now() + (options.lifetimeMs ?? 3_600_000)).toISOString(),
      },
      network: "none",
      ...(options.restartPolicy ? { restartPolicy: options.restartPolicy } : {}),
      labels: { [testLabel]: "1", [testRunLabel]: run },
    },
    onState: (change) => {
      changes.push(change);
      for (const waiter of waiters.filter((w) => w.match(change))) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve(change);
      }
    },
  };
  const supervisor = new BotSupervisor(settings);
  /** The first report matching (already made or still to come); a state's name matches that state. */
  const reached = (want: BotState | ((change: BotStateChange) => boolean)): Promise<BotStateChange> => {
    const match = typeof want === "string" ? (c: BotStateChange) => c.state === want : want;
    const seen = changes.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => waiters.push({ match, resolve }));
  };
  return { botId, supervisor, changes, reached, settings };
}

async function containersOf(engine: DockerEngine, botId: string) {
  return (await engine.listManaged()).filter((c) => c.labels["runyard.bot"] === botId);
}

describe.skipIf(!haveDocker)("a bot's supervisor on the real engine", () => {
  const engine = new DockerEngine();
  let image: string;

  beforeAll(async () => {
    image = await busyboxImage();
  }, 120_000);

  afterAll(async () => {
    await removeTestObjects(run);
  }, 60_000);

  it("a bot that keeps running reports running with stats; stop ends it stopped with no container left", async () => {
    const bot = supervise(engine, image, `${untilTerm}; echo up; ${forever}`);
    await bot.supervisor.start();
    expect(bot.changes).toEqual([
      { state: "running", restarts: 0, containerId: expect.stringMatching(/^[0-9a-f]{64}$/) },
    ]);
    const [container] = await containersOf(engine, bot.botId);
    expect(container).toMatchObject({ name: `runyard-bot-${bot.botId}`, state: "running" });
    const status = await bot.supervisor.status();
    expect(status).toMatchObject({ state: "running", restarts: 0, exitCode: null });
    expect(status.memoryBytes).toBeGreaterThan(0);
    expect(status.cpuPercent).toBeGreaterThanOrEqual(0);
    expect(status.uptimeMs).toBeGreaterThanOrEqual(0);

    await bot.supervisor.stop();
    expect(bot.changes.map((c) => c.state)).toEqual(["running", "stopped"]);
    expect(await containersOf(engine, bot.botId)).toEqual([]);
    expect(await bot.supervisor.status()).toMatchObject({ state: "stopped", memoryBytes: null });
    await bot.supervisor.remove();
    expect(bot.changes.at(-1)?.state).toBe("removed");
  }, 60_000);

  it("a bot exiting 1 under policy no ends crashed with exit code 1 and its last log lines kept", async () => {
    const bot = supervise(
      engine,
      image,
      "for i in $(seq 1 150); do echo line $i; done; echo failing; exit 1",
    );
    await bot.supervisor.start();
    const crashed = await bot.reached("crashed");
    expect(crashed).toMatchObject({ state: "crashed", exitCode: 1, oomKilled: false, restarts: 0 });
    expect(crashed.error).toBeUndefined();
    expect(crashed.lastLogs).toHaveLength(100);
    // One stream only: Docker copies stdout and stderr on their own, so their order is not kept.
    expect(crashed.lastLogs?.at(0)).toBe("line 52");
    expect(crashed.lastLogs?.at(-1)).toBe("failing");
    expect(await containersOf(engine, bot.botId)).toEqual([]);
    expect(await bot.supervisor.status()).toMatchObject({ state: "crashed", exitCode: 1 });
  }, 60_000);

  it("under on-failure with 2 restarts it restarts twice, a new container each time, then ends crashed with BOT_RESTART_LOOP", async () => {
    const bot = supervise(engine, image, "echo attempt; exit 3", {
      restartPolicy: { kind: "on-failure", maxRestarts: 2, backoffMs: 100 },
    });
    await bot.supervisor.start();
    const crashed = await bot.reached("crashed");
    expect(crashed).toMatchObject({ exitCode: 3, restarts: 2, error: { code: restartLoopCode } });
    expect(crashed.lastLogs).toEqual(["attempt"]);
    // Each restart reports running with what its predecessor ended with.
    expect(bot.changes.map((c) => [c.state, c.restarts])).toEqual([
      ["running", 0],
      ["running", 1],
      ["running", 2],
      ["crashed", 2],
    ]);
    expect(bot.changes[1]).toMatchObject({ exitCode: 3, lastLogs: ["attempt"] });
    expect(await containersOf(engine, bot.botId)).toEqual([]);
  }, 60_000);

  it("a bot going past its memory limit ends crashed with oomKilled", async () => {
    // One 400 MB buffer, filled by one read: past the 256 MB limit in a fraction of a second of
    // CPU. A tail holding a growing line needed seconds of it, at the bot's half a CPU, and more
    // than the test's 60 s on a machine with two busy loops beside the suite.
    const bot = supervise(engine, image, "dd if=/dev/zero of=/dev/null bs=400M count=1");
    await bot.supervisor.start();
    const crashed = await bot.reached("crashed");
    expect(crashed).toMatchObject({ state: "crashed", oomKilled: true });
    expect(await containersOf(engine, bot.botId)).toEqual([]);
  }, 60_000);

  it("a bot with a lifetime of 8 s is stopped at its end and reports timeout", async () => {
    // The lifetime is a time of day (the server's expires_at), counted from now: the container
    // must be made and its shell set its trap well before it. A loaded engine took over 3 s to
    // make one (a 3 s lifetime ended a bot that had not printed "up" yet in a full run beside
    // other work); 8 s leaves that twice over.
    const bot = supervise(
      engine,
      image,
      "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.1; done",
      {
        lifetimeMs: 8_000,
      },
    );
    await bot.supervisor.start();
    const timeout = await bot.reached("timeout");
    expect(bot.changes.map((c) => c.state)).toEqual(["running", "timeout"]);
    // The bot had its SIGTERM and its grace: its trap ran and it exited on its own.
    expect(timeout).toMatchObject({ exitCode: 0, lastLogs: ["up", "bye"] });
    expect(await containersOf(engine, bot.botId)).toEqual([]);
  }, 60_000);

  it("under always a bot exiting 0 is started again; stop during its restarts ends it stopped with no container left", async () => {
    const bot = supervise(engine, image, "echo once; exit 0", {
      restartPolicy: { kind: "always", backoffMs: 100 },
    });
    await bot.supervisor.start();
    const again = await bot.reached((c) => c.state === "running" && c.restarts === 2);
    expect(again).toMatchObject({ exitCode: 0, oomKilled: false, lastLogs: ["once"] });
    expect(bot.changes.some((c) => c.state === "crashed" || c.state === "stopped")).toBe(false);
    await bot.supervisor.stop();
    expect(bot.changes.at(-1)).toMatchObject({ state: "stopped" });
    expect(await containersOf(engine, bot.botId)).toEqual([]);
  }, 60_000);

  it("a stop while an adopt asks the engine ends the bot stopped: its container removed, none started", async () => {
    // The runner's last life left the bot's container running; the next one adopts it, and the
    // bot is stopped while the engine is asked for the container.
    const left = supervise(engine, image, `${untilTerm}; ${forever}`);
    await left.supervisor.start();
    left.supervisor.detach();
    // A new supervisor of the same bot, as the runner's next life makes one.
    const next = new BotSupervisor(left.settings);
    const adopting = next.adopt();
    await next.stop();
    await adopting;
    expect(left.changes.map((c) => c.state)).toEqual(["running", "stopped"]);
    expect(await containersOf(engine, left.botId)).toEqual([]);
    // And with no container left to adopt: the adopt does not start one.
    const none = supervise(engine, image, `${untilTerm}; ${forever}`);
    const starting = none.supervisor.adopt();
    await none.supervisor.stop();
    await starting;
    expect(none.changes.map((c) => c.state)).toEqual(["stopped"]);
    expect(await containersOf(engine, none.botId)).toEqual([]);
  }, 60_000);

  it("reconcile adopts a known bot's container made by another supervisor and reports an unknown bot's as an orphan", async () => {
    const known = supervise(engine, image, `${untilTerm}; ${forever}`);
    const unknown = supervise(engine, image, `${untilTerm}; ${forever}`);
    await known.supervisor.start();
    await unknown.supervisor.start();
    try {
      // A fresh engine: a restarted server has only Docker's labels to go on.
      const result = await BotSupervisor.reconcile(new DockerEngine(), [known.botId]);
      const [knownContainer] = await containersOf(engine, known.botId);
      const [unknownContainer] = await containersOf(engine, unknown.botId);
      expect(result.adopted).toContainEqual({
        botId: known.botId,
        containerId: knownContainer?.id,
        running: true,
      });
      expect(result.orphans).toContain(unknownContainer?.id);
      expect(result.orphans).not.toContain(knownContainer?.id);
    } finally {
      await known.supervisor.stop();
      await unknown.supervisor.stop();
    }
  }, 60_000);
});
