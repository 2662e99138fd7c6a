import type { QuotaOverrides } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import type { Store } from "../store/index.js";
import type { Principal } from "./auth.js";

/** The server's quotas, from the config (docs/security.md "Quotas"); unset limits are no limit. */
export interface QuotaSettings {
  defaultMaxConcurrentRuns?: number | undefined;
  defaultMaxQueuedRuns?: number | undefined;
  /** The avtomatika-bot limit: 3 per user. */
  maxBotsPerUser?: number | undefined;
  quotas?: QuotaOverrides | undefined;
}

/** What the server gives every bot unless a tenant's or user's quota says otherwise. */
export interface BotDefaults {
  lifetimeSecs: number;
  memoryMb: number;
  cpus: number;
  pids: number;
  network: string;
  maxUploadBytes: number;
}

/** The avtomatika-bot defaults: 24 h, 256 MB, half a CPU, 100 processes; Docker's default network. */
export const defaultBotSettings: BotDefaults = {
  lifetimeSecs: 86_400,
  memoryMb: 256,
  cpus: 0.5,
  pids: 100,
  network: "bridge",
  maxUploadBytes: 32 * 1024 * 1024,
};

/** Who starts a bot, and the limits that apply to them. */
export interface BotStarter {
  tenantId: string | null;
  /** The user id, or the token id; the quota counts by it. */
  owner: string;
  maxBots: number;
  /** Names the quota's setting in QUOTA_EXCEEDED's hint. */
  quotaSetting: string;
  limits: { memoryMb: number; cpus: number; pids: number };
}

type RunLimit = "max_concurrent_runs" | "max_queued_runs";

const limitWords: Record<
  RunLimit,
  { noun: string; count: "running" | "queued"; defaultKey: string; env: string }
> = {
  max_concurrent_runs: {
    noun: "concurrent runs",
    count: "running",
    defaultKey: "quotas.default_max_concurrent_runs",
    env: "RUNYARD_DEFAULT_MAX_CONCURRENT_RUNS",
  },
  max_queued_runs: {
    noun: "queued runs",
    count: "queued",
    defaultKey: "quotas.default_max_queued_runs",
    env: "RUNYARD_DEFAULT_MAX_QUEUED_RUNS",
  },
};

/**
 * Checks a submit against the tenant's and the caller's limits, counted from the store for every
 * replica. Two submits at one instant may both take the last slot: overshoot is one run per submitter.
 */
export class Quotas {
  constructor(
    private readonly store: Pick<Store, "runs" | "tokens">,
    private readonly settings: QuotaSettings = {},
    private readonly bots: Pick<BotDefaults, "memoryMb" | "cpus" | "pids"> = defaultBotSettings,
  ) {}

  /**
   * Who starts a bot (the user, else the token), how many live bots they may keep, and the container
   * limits (the user's, else the tenant's, else the server's).
   */
  botStarter(principal: Principal | undefined): BotStarter {
    const username = principal?.username ?? null;
    const user = username === null ? undefined : this.settings.quotas?.users?.[username];
    const tenantId = principal?.tenant_id ?? null;
    const tenant = tenantId === null ? undefined : this.settings.quotas?.tenants?.[tenantId];
    return {
      tenantId,
      owner: principal?.user_id ?? principal?.token_id ?? "local",
      maxBots: this.maxBots(username),
      quotaSetting:
        user?.max_bots !== undefined
          ? `quotas.users.${username}.max_bots`
          : "RUNYARD_MAX_BOTS_PER_USER (MAX_BOTS_PER_USER)",
      limits: {
        memoryMb: user?.bot_memory_mb ?? tenant?.bot_memory_mb ?? this.bots.memoryMb,
        cpus: user?.bot_cpus ?? tenant?.bot_cpus ?? this.bots.cpus,
        pids: user?.bot_pids ?? tenant?.bot_pids ?? this.bots.pids,
      },
    };
  }

  /** Bots a user may keep alive at once (the avtomatika-bot's MAX_BOTS_PER_USER). */
  maxBots(username: string | null): number {
    const own = username === null ? undefined : this.settings.quotas?.users?.[username]?.max_bots;
    return own ?? this.settings.maxBotsPerUser ?? 3;
  }

  /** Throws QUOTA_EXCEEDED (429) when one more run would go past a limit; stores nothing. */
  async checkSubmit(principal: Principal | undefined): Promise<void> {
    const tenant = principal?.tenant_id ?? null;
    if (tenant !== null) {
      const limits = this.settings.quotas?.tenants?.[tenant];
      await this.checkRuns(
        `tenant ${tenant}`,
        `quotas.tenants.${tenant}`,
        (limit) => limits?.[limit],
        () => this.store.runs.countActive({ tenantId: tenant }),
      );
    }
    if (principal?.user_id != null && principal.username !== null) {
      const { user_id: userId, username } = principal;
      const limits = this.settings.quotas?.users?.[username];
      await this.checkRuns(
        `user ${username}`,
        `quotas.users.${username}`,
        (limit) => limits?.[limit],
        // Through any of their tokens, a revoked one too.
        () => this.store.runs.countActive({ user: userId }),
      );
    }
  }

  private async checkRuns(
    who: string,
    ownKey: string,
    own: (limit: RunLimit) => number | undefined,
    count: () => Promise<{ queued: number; running: number }>,
  ): Promise<void> {
    const limits: Array<{ limit: RunLimit; max: number; fromDefault: boolean }> = [];
    for (const limit of ["max_concurrent_runs", "max_queued_runs"] as const) {
      const value = own(limit);
      const fallback =
        limit === "max_concurrent_runs"
          ? this.settings.defaultMaxConcurrentRuns
          : this.settings.defaultMaxQueuedRuns;
      if (value !== undefined) limits.push({ limit, max: value, fromDefault: false });
      else if (fallback !== undefined) limits.push({ limit, max: fallback, fromDefault: true });
    }
    if (limits.length === 0) return;
    const counts = await count();
    for (const { limit, max, fromDefault } of limits) {
      const words = limitWords[limit];
      const current = counts[words.count];
      if (current < max) continue;
      const key = `${ownKey}.${limit}`;
      const applies = fromDefault
        ? ` (unset now, so the default ${words.defaultKey}, or ${words.env}, applies to it)`
        : "";
      throw new RunyardError("QUOTA_EXCEEDED", `${who} has ${current} of ${max} ${words.noun}`, {
        hint: `Wait for a run to finish or cancel one (runyard runs cancel ID); an admin raises the limit with ${key} in the server's config file${applies}.`,
        details: {
          limit,
          scope: who,
          current,
          max,
          config_key: key,
          ...(fromDefault ? { default_key: words.defaultKey } : {}),
        },
      });
    }
  }
}
