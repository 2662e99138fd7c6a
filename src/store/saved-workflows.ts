import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { int, isoTime, tenantKey, tenantOf } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import { type NewSchedule, replaceSchedules } from "./schedules.js";
import type { SavedWorkflowsTable } from "./schema.js";

/** One version of a tenant's saved workflow, as stored: its row, with the YAML text as saved. */
export type SavedWorkflowRecord = Omit<Selectable<SavedWorkflowsTable>, "tenant_id" | "unrestricted"> & {
  /** The tenant it belongs to; null outside any tenant. */
  tenant_id: string | null;
  /** Saved by a platform admin: its runs may call any destination when their trigger's may too. */
  unrestricted: boolean;
};

/** What `savedWorkflows.save` stores: a new version, and the schedules of that version. */
export interface NewSavedWorkflow {
  tenant_id: string | null;
  name: string;
  workflow: string;
  file: string;
  created_by: string | null;
  unrestricted?: boolean;
  /**
   * Make it the version triggers run at once (its saver may act for every trigger bound to the
   * name): its `schedules` replace the name's. Otherwise it is stored pending and the schedules
   * stay as they are.
   */
  promote: boolean;
  /** The version's `schedule:` entries (used when it is promoted). */
  schedules?: readonly NewSchedule[];
}

/** A saved workflow in a list: its newest version and how many there are. */
export interface SavedWorkflowSummary {
  tenant_id: string | null;
  name: string;
  latest_version: number;
  versions: number;
  updated_at: string;
  created_by: string | null;
  /** The version hooks and schedules run: the highest promoted; null when none is. */
  live_version: number | null;
  /** Versions newer than the live one, waiting for promotion. */
  pending_versions: number[];
}

/** A version in a list of versions: no text. */
export type SavedVersionSummary = Pick<
  SavedWorkflowRecord,
  "version" | "created_at" | "created_by" | "promoted_at" | "promoted_by"
>;

function toRecord(ctx: StoreContext, row: Selectable<SavedWorkflowsTable>): SavedWorkflowRecord {
  return {
    ...row,
    tenant_id: tenantOf(row.tenant_id),
    version: int(row.version),
    workflow: ctx.cipher.open(row.workflow),
    unrestricted: int(row.unrestricted) === 1,
    promoted_at: row.promoted_at ?? null,
    promoted_by: row.promoted_by ?? null,
  };
}

/**
 * Stores the next version of a name and replaces its schedules, in one transaction. Two saves at
 * once both read the same latest version; the second insert breaks the key and is tried again
 * with the next number.
 */
async function saveWorkflow(ctx: StoreContext, input: NewSavedWorkflow): Promise<SavedWorkflowRecord> {
  const tenant = tenantKey(input.tenant_id);
  for (let attempt = 0; ; attempt += 1) {
    try {
      return await ctx.db.transaction().execute(async (trx) => {
        const latest = await trx
          .selectFrom("saved_workflows")
          .select((eb) => eb.fn.max("version").as("version"))
          .where("tenant_id", "=", tenant)
          .where("name", "=", input.name)
          .executeTakeFirst();
        const version = latest?.version == null ? 1 : int(latest.version) + 1;
        const created_at = isoTime(ctx.now());
        const row = {
          tenant_id: tenant,
          name: input.name,
          version,
          workflow: ctx.cipher.seal(input.workflow),
          file: input.file,
          created_at,
          created_by: input.created_by,
          unrestricted: input.unrestricted ? 1 : 0,
          promoted_at: input.promote ? created_at : null,
          promoted_by: input.promote ? input.created_by : null,
        };
        await trx.insertInto("saved_workflows").values(row).execute();
        if (input.promote) {
          await replaceSchedules(
            { ...ctx, db: trx },
            tenant,
            input.name,
            version,
            input.schedules ?? [],
            input.created_by,
          );
        }
        return toRecord(ctx, row);
      });
    } catch (error) {
      if (ctx.dialect.constraintViolation(error) !== "unique" || attempt >= 4) throw error;
    }
  }
}

/** Named, versioned workflows per tenant; a save never changes an earlier version. */
export interface SavedWorkflowsRepo {
  /** Stores the next version of `name` (1 for a new name); promoted, it replaces its schedules. */
  save(input: NewSavedWorkflow): Promise<SavedWorkflowRecord>;
  /** The newest version of a name, or the `version` asked for; undefined when there is none. */
  get(tenantId: string | null, name: string, version?: number): Promise<SavedWorkflowRecord | undefined>;
  /** The version a name's triggers run (its highest promoted); undefined when none is. */
  live(tenantId: string | null, name: string): Promise<SavedWorkflowRecord | undefined>;
  /**
   * Makes a pending version the one its name's triggers run, and its schedules the name's, in one
   * transaction. False when the version does not exist or is no longer pending (promoted already,
   * or older than the live version: another promotion came first).
   */
  promote(
    input: Pick<SavedWorkflowRecord, "tenant_id" | "name" | "version" | "promoted_by"> & {
      schedules: readonly NewSchedule[];
    },
  ): Promise<boolean>;
  /** A tenant's saved workflows by name (`undefined`: every tenant's). */
  list(tenantId: string | null | undefined): Promise<SavedWorkflowSummary[]>;
  /** The versions of a name, newest first, without their text. */
  versions(tenantId: string | null, name: string): Promise<SavedVersionSummary[]>;
  /** Deletes every version of a name and its schedules; false when there was none. */
  remove(tenantId: string | null, name: string): Promise<boolean>;
}

export function savedWorkflowsRepo(ctx: StoreContext): SavedWorkflowsRepo {
  /** A name's `version`, else its newest version (of the promoted ones only, with `promoted`). */
  const newest = async (
    tenantId: string | null,
    name: string,
    only: { version?: number | undefined; promoted?: boolean },
  ) => {
    const row = await ctx.db
      .selectFrom("saved_workflows")
      .selectAll()
      .where("tenant_id", "=", tenantKey(tenantId))
      .where("name", "=", name)
      .$if(only.version !== undefined, (q) => q.where("version", "=", only.version ?? 0))
      .$if(only.promoted === true, (q) => q.where("promoted_at", "is not", null))
      .orderBy("version", "desc")
      .limit(1)
      .executeTakeFirst();
    return row && toRecord(ctx, row);
  };
  const repo: SavedWorkflowsRepo = {
    save: (input) => {
      if (input.name === "") throw new RunyardError("INVALID_INPUT", "a saved workflow needs a name");
      return saveWorkflow(ctx, input);
    },
    get: (tenantId, name, version) => newest(tenantId, name, { version }),
    live: (tenantId, name) => newest(tenantId, name, { promoted: true }),
    async promote(input) {
      const tenant = tenantKey(input.tenant_id);
      return ctx.db.transaction().execute(async (trx) => {
        const live = await trx
          .selectFrom("saved_workflows")
          .select((eb) => eb.fn.max("version").as("version"))
          .where("tenant_id", "=", tenant)
          .where("name", "=", input.name)
          .where("promoted_at", "is not", null)
          .executeTakeFirst();
        if (live?.version != null && int(live.version) >= input.version) return false;
        const result = await trx
          .updateTable("saved_workflows")
          .set({ promoted_at: isoTime(ctx.now()), promoted_by: input.promoted_by })
          .where("tenant_id", "=", tenant)
          .where("name", "=", input.name)
          .where("version", "=", input.version)
          .where("promoted_at", "is", null)
          .executeTakeFirst();
        if (result.numUpdatedRows === 0n) return false;
        await replaceSchedules(
          { ...ctx, db: trx },
          tenant,
          input.name,
          input.version,
          input.schedules,
          input.promoted_by,
        );
        return true;
      });
    },
    async list(tenantId) {
      let select = ctx.db
        .selectFrom("saved_workflows")
        .select((eb) => [
          "tenant_id",
          "name",
          eb.fn.max("version").as("latest_version"),
          eb.fn.countAll<number | string>().as("versions"),
          eb.fn.max("created_at").as("updated_at"),
        ])
        .groupBy(["tenant_id", "name"])
        .orderBy("tenant_id")
        .orderBy("name");
      if (tenantId !== undefined) select = select.where("tenant_id", "=", tenantKey(tenantId));
      const rows = await select.execute();
      const summaries: SavedWorkflowSummary[] = [];
      for (const row of rows) {
        const latest = await repo.get(tenantOf(row.tenant_id), row.name);
        const versions = await repo.versions(tenantOf(row.tenant_id), row.name);
        const live = versions.find((v) => v.promoted_at !== null)?.version ?? null;
        summaries.push({
          tenant_id: tenantOf(row.tenant_id),
          name: row.name,
          latest_version: int(row.latest_version),
          versions: int(row.versions),
          updated_at: row.updated_at,
          created_by: latest?.created_by ?? null,
          live_version: live,
          pending_versions: versions
            .filter((v) => v.promoted_at === null && (live === null || v.version > live))
            .map((v) => v.version)
            .reverse(),
        });
      }
      return summaries;
    },
    async versions(tenantId, name) {
      const rows = await ctx.db
        .selectFrom("saved_workflows")
        .select(["version", "created_at", "created_by", "promoted_at", "promoted_by"])
        .where("tenant_id", "=", tenantKey(tenantId))
        .where("name", "=", name)
        .orderBy("version", "desc")
        .execute();
      return rows.map((row) => ({
        ...row,
        version: int(row.version),
        promoted_at: row.promoted_at ?? null,
        promoted_by: row.promoted_by ?? null,
      }));
    },
    async remove(tenantId, name) {
      const tenant = tenantKey(tenantId);
      return ctx.db.transaction().execute(async (trx) => {
        const ids = trx
          .selectFrom("schedules")
          .select("id")
          .where("tenant_id", "=", tenant)
          .where("workflow_name", "=", name);
        await trx.deleteFrom("schedule_ticks").where("schedule_id", "in", ids).execute();
        await trx
          .deleteFrom("schedules")
          .where("tenant_id", "=", tenant)
          .where("workflow_name", "=", name)
          .execute();
        const result = await trx
          .deleteFrom("saved_workflows")
          .where("tenant_id", "=", tenant)
          .where("name", "=", name)
          .executeTakeFirst();
        return result.numDeletedRows > 0n;
      });
    },
  };
  return repo;
}
