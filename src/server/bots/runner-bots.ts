import { type BotState, liveBotStates, upBotStates } from "../../core/bot-states.js";
import type { BotStats } from "../../core/protocol.js";
import type { Store } from "../../store/index.js";
import { botJobPrefix } from "./bot-runs.js";

/** The runner a bot container was found on or reports for. */
interface BotRunner {
  id: string;
  tenant_id: string | null;
}

/** The bot containers a runner found at start (hello), and the install each is labelled with. */
export interface FoundBots {
  ids: readonly string[];
  /** By bot id; absent from a runner that predates install labels, which is taken at its word. */
  installs?: Readonly<Record<string, string>>;
}

/**
 * Bot containers a runner found at start that it must remove: those of its live bots stay (their
 * jobs come back to it to adopt them); any other of this install (a bot stopped or removed while
 * the runner was away, another runner's or tenant's) goes, so nothing is left orphaned. Another
 * install's containers on the same engine are never this server's to judge, and neither is one
 * made before containers named their install, unless it is a live bot of this install.
 */
export async function botsToDisown(
  store: Pick<Store, "bots">,
  runner: BotRunner,
  found: FoundBots,
  installId: string,
): Promise<string[]> {
  const disowned: string[] = [];
  for (const botId of found.ids) {
    const bot = await store.bots.get(botId);
    const wanted =
      bot !== undefined &&
      (liveBotStates as readonly string[]).includes(bot.state) &&
      (bot.runner_id === null || bot.runner_id === runner.id) &&
      (runner.tenant_id === null || bot.tenant_id === runner.tenant_id);
    const ours = found.installs === undefined || found.installs[botId] === installId;
    if (!wanted && ours) disowned.push(botId);
  }
  return disowned;
}

/**
 * Keeps what a runner's bots use now on their records, for status and list on any replica. A
 * runner speaks only for bots whose jobs it holds (`heldJobIds`).
 */
export async function recordBotStats(
  store: Pick<Store, "bots" | "botHistory">,
  heldJobIds: readonly string[],
  samples: readonly BotStats[],
): Promise<void> {
  // A heartbeat carries a few samples of each bot: the newest goes on the record.
  const newest = new Map<string, BotStats>();
  for (const sample of samples) {
    const bot = await store.bots.get(sample.bot_id);
    if (!bot?.run_id || !(upBotStates as readonly BotState[]).includes(bot.state)) continue;
    const prefix = botJobPrefix(bot.run_id);
    if (!heldJobIds.some((jobId) => jobId.startsWith(prefix))) continue;
    await store.botHistory.addSamples([{ ...sample, tenant_id: bot.tenant_id }]);
    const seen = newest.get(sample.bot_id);
    if (!seen || seen.at <= sample.at) newest.set(sample.bot_id, sample);
  }
  for (const sample of newest.values()) {
    await store.bots.update(
      sample.bot_id,
      { memory_bytes: sample.memory_bytes, cpu_percent: sample.cpu_percent, stats_at: sample.at },
      { ifState: upBotStates },
    );
  }
}
