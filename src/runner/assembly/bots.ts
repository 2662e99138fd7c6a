import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { botBaseImagesFromEnv } from "../../bots/simple-build.js";
import type { Logger } from "../../core/logger.js";
import { DockerEngine, dockerEndpoint } from "../../exec/docker/docker-engine.js";
import { installLabel, type RunnerInstall, runnerLabel } from "../../exec/runner-install.js";
import { BotJobHandler } from "../handlers/bot.js";
import type { RunnerDaemonOptions } from "../runner-options.js";

/** What a runner with Docker adds for bots: its handler, its label, and the containers it found. */
export interface RunnerBots extends NonNullable<RunnerDaemonOptions["bots"]> {
  handler: BotJobHandler | undefined;
  /** Why there is no handler (no engine answered, and where it was asked); undefined with one. */
  missing?: string;
  labels: string[];
}

/**
 * Bots run on runners that reach a Docker engine (DOCKER_HOST, else `/var/run/docker.sock`): such a runner
 * advertises the label `docker` and reports the bot containers it finds at start, so the server
 * can hand it back the live ones to adopt and tell it to remove the rest. Runners of several
 * installs may share the engine: it removes only its own install's (`owner`).
 */
export async function runnerBots(
  env: Record<string, string | undefined>,
  stateDir: string,
  owner: RunnerInstall,
  logger: Logger,
): Promise<RunnerBots> {
  const endpoint = dockerEndpoint(env.DOCKER_HOST);
  const engine = new DockerEngine(endpoint.options);
  if (!(await engine.ping())) {
    const missing = `no Docker engine answers at ${endpoint.where}`;
    logger.info(`${missing}: this runner takes no bots`);
    return {
      handler: undefined,
      missing,
      labels: [],
      found: [],
      installs: {},
      remove: async () => undefined,
      stats: () => [],
    };
  }
  const workDir = join(stateDir, "bot-builds");
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const handler = new BotJobHandler({
    engine,
    baseImages: botBaseImagesFromEnv(env),
    workDir,
    logDir: join(stateDir, "bot-logs"),
    env,
    allowLocalGit: env.RUNYARD_BOT_GIT_LOCAL === "1",
    ...botStatsInterval(env),
    // Asked at each start: the install is known once the server has welcomed the runner.
    labels: () => owner.labels(),
  });
  // Reported by runner id alone: the server, which knows its install, judges each by its label.
  const found = new Map<string, string | undefined>();
  for (const container of await engine.listManaged()) {
    const botId = container.labels["runyard.bot"];
    if (container.labels[runnerLabel] !== owner.runnerId || !botId) continue;
    found.set(botId, container.labels[installLabel]);
  }
  return {
    handler,
    labels: ["docker"],
    found: [...found.keys()],
    installs: Object.fromEntries(
      [...found].filter((entry): entry is [string, string] => entry[1] !== undefined),
    ),
    stats: () => handler.takeStats(),
    call: (botId, call, sendPart) => handler.call(botId, call, sendPart),
    async remove(botId) {
      // Never a bot held here (a run of it is going on): `held` is by run id.
      if ([...handler.held.values()].some((held) => held.botId === botId)) return;
      for (const container of await engine.listManaged()) {
        if (container.labels["runyard.bot"] === botId && owner.owns(container.labels))
          await engine.remove(container.id);
      }
    },
  };
}

/** `RUNYARD_BOT_STATS_SECS`: how often held bots are sampled (a positive number; else the default). */
function botStatsInterval(env: NodeJS.ProcessEnv): { statsIntervalMs?: number } {
  const secs = Number(env.RUNYARD_BOT_STATS_SECS);
  return env.RUNYARD_BOT_STATS_SECS && Number.isFinite(secs) && secs > 0
    ? { statsIntervalMs: secs * 1000 }
    : {};
}
