import type { Selectable } from "kysely";
import { decodeJson, encodeJson, isoTime, tenantKey, tenantOf } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { ForgeDeliveriesTable, ForgeRunsTable, ForgesTable } from "./schema.js";

/** The settings every task of a forge gets, as an agent run body takes them. */
export interface ForgeTaskSettings {
  /** Runs after the agent; failing it fails the task (a shell command). */
  test?: string;
  /** Runs the agent in a hardened container of this image (docs/agents.md, "Sandboxed agents"). */
  sandbox_image?: string;
  model?: string;
  timeout_secs?: number;
  /** Runner group; else the server's repo routing. */
  group?: string;
}

/** A forge repo as anyone who may see it sees it: never its token or webhook secret. */
export type ForgeRecord = Omit<
  Selectable<ForgesTable>,
  "token" | "webhook_secret" | "tenant_id" | "settings"
> & {
  tenant_id: string | null;
  settings: ForgeTaskSettings;
};

export interface NewForge extends Omit<ForgeRecord, "created_at"> {
  token: string;
  webhook_secret: string;
}

/** A run a forge's issue or pull request started. */
export type ForgeRun = Omit<Selectable<ForgeRunsTable>, "reported"> & {
  /** Whether its end was reported to the forge (pull request, comment). */
  reported: boolean;
};

const recordColumns = [
  "id",
  "tenant_id",
  "kind",
  "repo",
  "api_url",
  "label",
  "agent",
  "settings",
  "created_at",
  "created_by",
] as const;

function toRecord(row: Pick<Selectable<ForgesTable>, (typeof recordColumns)[number]>): ForgeRecord {
  return {
    ...row,
    tenant_id: tenantOf(row.tenant_id),
    settings: decodeJson<ForgeTaskSettings>(row.settings),
  };
}

/** The outcome of a delivery claimed and not yet settled: it is being acted on. */
const deliveryReceived = "received";
/**
 * How long a delivery may stay claimed without an outcome before a redelivery takes it over:
 * far beyond what acting on one takes (a few forge API calls, each with its timeout).
 */
export const deliveryClaimGraceMs = 10 * 60_000;

function toForgeRun(row: Selectable<ForgeRunsTable>): ForgeRun {
  return {
    ...row,
    issue_number: Number(row.issue_number),
    pull_number: row.pull_number === null ? null : Number(row.pull_number),
    reported: Number(row.reported) === 1,
  };
}

/** Code forges (GitHub repos) whose issues start agent tasks, their deliveries and runs. */
export interface ForgesRepo {
  create(input: NewForge): Promise<ForgeRecord>;
  get(id: string): Promise<ForgeRecord | undefined>;
  /** The forge's API token and webhook secret, for calls and signature checks; never for an answer. */
  secrets(id: string): Promise<{ token: string; webhook_secret: string } | undefined>;
  /** A tenant's forges (`null`: outside any tenant; undefined: every tenant's). */
  list(tenantId: string | null | undefined): Promise<ForgeRecord[]>;
  remove(id: string): Promise<boolean>;
  recordDelivery(
    input: Pick<ForgeDeliveriesTable, "forge_id" | "delivery_id" | "event">,
  ): Promise<{ first: boolean; earlier?: { outcome: string; run_id: string | null } }>;
  /** What became of a delivery: `started`, `ignored: ...`, `refused: ...`. */
  settleDelivery(forgeId: string, deliveryId: string, outcome: string, runId: string | null): Promise<void>;
  /**
   * Forgets deliveries that were claimed and never settled (the forge's API failed, the quota
   * refused, the run could not be stored): the forge's redelivery of them is then acted on. A
   * settled delivery is kept.
   */
  forgetDeliveries(forgeId: string, deliveryIds: string[]): Promise<void>;
  addRun(input: Omit<ForgeRun, "reported" | "created_at">): Promise<void>;
  getRun(runId: string): Promise<ForgeRun | undefined>;
  latestRun(forgeId: string, number: { issue: number } | { pull: number }): Promise<ForgeRun | undefined>;
  markReported(runId: string, pullNumber: number | null): Promise<boolean>;
  setPull(runId: string, pullNumber: number): Promise<void>;
}

export function forgesRepo(ctx: StoreContext): ForgesRepo {
  const records = () => ctx.db.selectFrom("forges").select(recordColumns);
  return {
    async create(input) {
      const row = {
        id: input.id,
        tenant_id: tenantKey(input.tenant_id),
        kind: input.kind,
        repo: input.repo,
        api_url: input.api_url,
        label: input.label,
        agent: input.agent,
        settings: encodeJson(input.settings),
        created_at: isoTime(ctx.now()),
        created_by: input.created_by,
      };
      await ctx.db
        .insertInto("forges")
        .values({
          ...row,
          token: ctx.cipher.seal(input.token),
          webhook_secret: ctx.cipher.seal(input.webhook_secret),
        })
        .execute();
      return toRecord(row);
    },
    async get(id) {
      const row = await records().where("id", "=", id).executeTakeFirst();
      return row && toRecord(row);
    },
    async secrets(id) {
      const row = await ctx.db
        .selectFrom("forges")
        .select(["token", "webhook_secret"])
        .where("id", "=", id)
        .executeTakeFirst();
      return (
        row && { token: ctx.cipher.open(row.token), webhook_secret: ctx.cipher.open(row.webhook_secret) }
      );
    },
    async list(tenantId) {
      let select = records();
      if (tenantId !== undefined) select = select.where("tenant_id", "=", tenantKey(tenantId));
      return (await select.orderBy("created_at").orderBy("id").execute()).map(toRecord);
    },
    async remove(id) {
      return ctx.db.transaction().execute(async (trx) => {
        await trx.deleteFrom("forge_deliveries").where("forge_id", "=", id).execute();
        await trx.deleteFrom("forge_runs").where("forge_id", "=", id).execute();
        const result = await trx.deleteFrom("forges").where("id", "=", id).executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
    },
    /**
     * Records a delivery once per forge and delivery id, in one statement: the first to record it
     * wins, across replicas (the primary key is the claim). `first` false: it was received before
     * (`earlier` says what became of it; `received` while the first is still acting on it).
     */
    async recordDelivery(input) {
      for (let attempt = 0; ; attempt++) {
        const inserted = await ctx.db
          .insertInto("forge_deliveries")
          .values({ ...input, outcome: deliveryReceived, run_id: null, received_at: isoTime(ctx.now()) })
          .onConflict((conflict) => conflict.columns(["forge_id", "delivery_id"]).doNothing())
          .returning("delivery_id")
          .executeTakeFirst();
        if (inserted) return { first: true };
        // A claim never settled within the grace is one its replica died holding: the forge's
        // redelivery takes it over (once: the update is the claim), or the delivery would stay
        // "being acted on" for good.
        const now = ctx.now();
        const retaken = await ctx.db
          .updateTable("forge_deliveries")
          .set({ received_at: isoTime(now), event: input.event })
          .where("forge_id", "=", input.forge_id)
          .where("delivery_id", "=", input.delivery_id)
          .where("outcome", "=", deliveryReceived)
          .where("received_at", "<", isoTime(new Date(now.getTime() - deliveryClaimGraceMs)))
          .returning("delivery_id")
          .executeTakeFirst();
        if (retaken) return { first: true };
        const earlier = await ctx.db
          .selectFrom("forge_deliveries")
          .select(["outcome", "run_id"])
          .where("forge_id", "=", input.forge_id)
          .where("delivery_id", "=", input.delivery_id)
          .executeTakeFirst();
        if (earlier) return { first: false, earlier };
        // Forgotten between the two statements (the first could not act on it): claim it again.
        if (attempt >= 2) return { first: false };
      }
    },
    async settleDelivery(forgeId, deliveryId, outcome, runId) {
      await ctx.db
        .updateTable("forge_deliveries")
        .set({ outcome, run_id: runId })
        .where("forge_id", "=", forgeId)
        .where("delivery_id", "=", deliveryId)
        .execute();
    },
    async forgetDeliveries(forgeId, deliveryIds) {
      await ctx.db
        .deleteFrom("forge_deliveries")
        .where("forge_id", "=", forgeId)
        .where("delivery_id", "in", deliveryIds)
        .where("outcome", "=", deliveryReceived)
        .execute();
    },
    async addRun(input) {
      await ctx.db
        .insertInto("forge_runs")
        .values({ ...input, reported: 0, created_at: isoTime(ctx.now()) })
        .execute();
    },
    async getRun(runId) {
      const row = await ctx.db
        .selectFrom("forge_runs")
        .selectAll()
        .where("run_id", "=", runId)
        .executeTakeFirst();
      return row && toForgeRun(row);
    },
    /** The newest run of a forge's issue or pull request (a follow-up continues it). */
    async latestRun(forgeId, number) {
      let select = ctx.db.selectFrom("forge_runs").selectAll().where("forge_id", "=", forgeId);
      select =
        "issue" in number
          ? select.where("issue_number", "=", number.issue)
          : select.where("pull_number", "=", number.pull);
      const row = await select.orderBy("created_at", "desc").orderBy("run_id", "desc").executeTakeFirst();
      return row && toForgeRun(row);
    },
    /** Marks a run's end reported, once: false when another replica reported it first. */
    async markReported(runId, pullNumber) {
      const result = await ctx.db
        .updateTable("forge_runs")
        .set({ reported: 1, ...(pullNumber !== null ? { pull_number: pullNumber } : {}) })
        .where("run_id", "=", runId)
        .where("reported", "=", 0)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },
    /** The pull request a run opened: comments there continue it. */
    async setPull(runId, pullNumber) {
      await ctx.db
        .updateTable("forge_runs")
        .set({ pull_number: pullNumber })
        .where("run_id", "=", runId)
        .execute();
    },
  };
}
