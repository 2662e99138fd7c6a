import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { botBaseImagesFromEnv } from "../bots/simple-build.js";
import type { Logger } from "../core/logger.js";
import type { BotCall, BotReply, BotStats } from "../core/protocol.js";
import { DockerEngine, dockerEndpoint } from "../exec/docker-engine.js";
import { BotJobHandler } from "../runner/handlers/bot.js";

/** The label naming the runner whose bot a container is. */
const runnerLabel = "runyard.runner";

/** What a runner with Docker adds for bots: its handler, its label, and the containers it found. */
export interface RunnerBots {
  handler: BotJobHandler | undefined;
  /** Why there is no handler (no engine answered, and where it was asked); undefined with one. */
  missing?: string;
  labels: string[];
  found: string[];
  remove(botId: string): Promise<void>;
  stats(): BotStats[];
  call?(botId: string, call: BotCall, sendPart: (bodyBase64: string) => Promise<void>): Promise<BotReply>;
}

/**
 * Bots run on runners that reach a Docker engine (DOCKER_HOST, else `/var/run/docker.sock`): such a runner
 * advertises the label `docker` and reports the bot containers it finds at start, so the server
 * can hand it back the live ones to adopt and tell it to remove the rest.
 */
export async function runnerBots(
  env: Record<string, string | undefined>,
  stateDir: string,
  runnerId: string,
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
      remove: async () => undefined,
      stats: () => [],
    };
  }
  const workDir = join(stateDir, "bot-builds");
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  // Runners may share one Docker engine: each knows its own bots' containers by this label.
  const mine = { [runnerLabel]: runnerId };
  const handler = new BotJobHandler({
    engine,
    baseImages: botBaseImagesFromEnv(env),
    workDir,
    logDir: join(stateDir, "bot-logs"),
    env,
    allowLocalGit: env.RUNYARD_BOT_GIT_LOCAL === "1",
    labels: mine,
  });
  const own = async () =>
    (await engine.listManaged()).filter((container) => container.labels[runnerLabel] === runnerId);
  const found = (await own())
    .map((container) => container.labels["runyard.bot"])
    .filter((botId): botId is string => botId !== undefined && botId !== "");
  return {
    handler,
    labels: ["docker"],
    found: [...new Set(found)],
    stats: () => handler.takeStats(),
    call: (botId, call, sendPart) => handler.call(botId, call, sendPart),
    async remove(botId) {
      if (handler.held.has(botId)) return;
      for (const container of await own()) {
        if (container.labels["runyard.bot"] === botId) await engine.remove(container.id);
      }
    },
  };
}
