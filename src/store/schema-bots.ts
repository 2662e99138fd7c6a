import type { ColumnType } from "kysely";
import type { BotMode, BotState } from "../core/bot-states.js";

/* The bots' tables (see schema.ts for the conventions every table follows). */

/** A bot; `spec` (JSON) and `last_logs` sealed with the store's key, `error` JSON ErrorInfo. */
export interface BotsTable {
  id: string;
  tenant_id: string | null;
  /** The user id, or the token id, that made the bot; the per-user quota counts by it. */
  owner: string;
  /** Unique per tenant and owner among bots that are not `removed`. */
  name: string;
  mode: BotMode;
  spec: string;
  state: BotState;
  runner_id: string | null;
  container_id: string | null;
  image: string | null;
  /** How many times its container was restarted. */
  restarts: ColumnType<number, number | undefined, number>;
  /** Docker's restart policy, e.g. `no`, `on-failure:3`. */
  restart_policy: ColumnType<string, string | undefined, string>;
  exit_code: number | null;
  /** 0 or 1. */
  oom_killed: ColumnType<number, number | undefined, number>;
  /** The previous container's last lines of output (for `logs --previous`). */
  last_logs: string | null;
  error: string | null;
  created_at: string;
  updated_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** When its lifetime ends: a bot still running then ends `timeout`. */
  expires_at: string;
  /** The run of its current (or last) life. */
  run_id: string | null;
  /** What its container used at `stats_at` (the runner's last heartbeat), null when unknown. */
  memory_bytes: number | null;
  cpu_percent: number | null;
  stats_at: string | null;
  /** JSON: the last health probe's report; null without a health check. */
  health: ColumnType<string | null, string | null | undefined, string | null>;
  /** The version running now (1 at its start; one more per update, rollback or env change). */
  version: ColumnType<number, number | undefined, number>;
}

/** One version of a bot (migration 0037). */
export interface BotVersionsTable {
  bot_id: string;
  version: number;
  /** The run of that version's life: its sealed spec is what the version is made of. */
  run_id: string | null;
  state: "starting" | "live" | "failed" | "replaced";
  reason: "start" | "update" | "rollback" | "env";
  /** JSON: what may be shown of it. */
  summary: string;
  image: string | null;
  /** JSON ErrorInfo: why it failed. */
  error: string | null;
  created_by: string | null;
  created_at: string;
  finished_at: string | null;
}

/** One sample (resolution 5) or one average over a minute (60) or ten (600) of a bot's use. */
export interface BotSamplesTable {
  bot_id: string;
  tenant_id: string | null;
  /** Seconds a row stands for: 5 (one runner sample), 60 or 600 (averages). */
  resolution: number;
  at: string;
  cpu_percent: number;
  /** At 60 and 600: the highest of the span (what a limit is hit by). */
  memory_bytes: number;
  memory_limit_bytes: number | null;
  /** Counters since the container started: at 60 and 600, the span's last. */
  net_rx_bytes: number;
  net_tx_bytes: number;
  pids: number;
  restarts: number;
}

/** One alert episode of a bot; `ended_at` null while it lasts. */
export interface BotAlertsTable {
  id: string;
  bot_id: string;
  tenant_id: string | null;
  kind: string;
  message: string;
  started_at: string;
  ended_at: string | null;
  notified_at: string | null;
  notify_error: string | null;
}

/** A tenant's alert rules for all its bots (`alerts` JSON, `notify` JSON sealed). */
export interface TenantBotAlertsTable {
  tenant_id: string;
  alerts: string;
  notify: string;
  updated_at: string;
  updated_by: string | null;
}

/** Webhook requests a bot took in one whole second, counted across replicas. */
export interface BotHookHitsTable {
  bot_id: string;
  second: number;
  count: number;
}
