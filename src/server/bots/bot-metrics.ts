import { Gauge, type Registry } from "prom-client";
import type { Store } from "../../store/index.js";

/**
 * Per-bot gauges of `/metrics`, from each running bot's last sample on its record (the runner's
 * heartbeat), labelled by the bot's id, name and tenant. A bot that no longer runs has none.
 */
export function botGauges(store: Pick<Store, "bots">, registers: Registry[]): void {
  const labelNames = ["bot_id", "bot", "tenant"] as const;
  const running = async () => (await store.bots.list({ states: ["running"] })).filter((bot) => bot.stats_at);
  const per = (
    name: string,
    help: string,
    value: (bot: Awaited<ReturnType<typeof running>>[number]) => number | null,
  ) =>
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      async collect() {
        this.reset();
        for (const bot of await running()) {
          const figure = value(bot);
          if (figure !== null)
            this.set({ bot_id: bot.id, bot: bot.name, tenant: bot.tenant_id ?? "" }, figure);
        }
      },
    });
  per("runyard_bot_memory_bytes", "What each running bot's container uses now.", (bot) => bot.memory_bytes);
  per(
    "runyard_bot_cpu_percent",
    "Each running bot's CPU now, in percent of one CPU.",
    (bot) => bot.cpu_percent,
  );
  per(
    "runyard_bot_restarts",
    "Restarts of each running bot's container in its current life.",
    (bot) => bot.restarts,
  );
}
