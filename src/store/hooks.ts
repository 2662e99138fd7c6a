import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { decodeJson, encodeJson, isoTime, tenantKey, tenantOf } from "./columns.js";
import { type StoreContext, writeUnique } from "./dialect.js";
import type { HooksTable } from "./schema.js";

/** A signed webhook as anyone who may see it sees it: never its secret. */
export type HookRecord = Omit<Selectable<HooksTable>, "secret" | "tenant_id" | "vars"> & {
  /** The tenant it belongs to (its runs' tenant); null outside any tenant. */
  tenant_id: string | null;
  /** The workflow's inputs picked from a delivery's JSON body: `{HOOK_BRANCH: "$.ref"}`. */
  vars: Record<string, string>;
};

/** What `hooks.create` stores; the secret is sealed with the store's key before it is written. */
export type NewHook = Omit<HookRecord, "created_at"> & { secret: string };

/** A delivery of a hook already received: the run it started. */
export interface HookDelivery {
  hook_id: string;
  /**
   * The sender's `X-GitHub-Delivery`, or `sha256:` and the hex SHA-256 of the body: a delivery is
   * recorded under both (only the body is signed, so the same body is the same delivery).
   */
  delivery_id: string;
  run_id: string;
  received_at: string;
}

const recordColumns = ["id", "name", "tenant_id", "workflow", "vars", "created_at", "created_by"] as const;

function toHookRecord(row: Omit<Selectable<HooksTable>, "secret">): HookRecord {
  return { ...row, tenant_id: tenantOf(row.tenant_id), vars: decodeJson<Record<string, string>>(row.vars) };
}

/** Signed webhooks that start saved workflows, and the deliveries each has received. */
export interface HooksRepo {
  /** Stores a hook, its secret sealed; a name its tenant has already is CONFLICT. */
  create(input: NewHook): Promise<HookRecord>;
  /** A tenant's hook by name (`null`: outside any tenant); another tenant's is undefined. */
  get(tenantId: string | null, name: string): Promise<HookRecord | undefined>;
  /** The hook a delivery URL names, whatever its tenant. */
  byId(id: string): Promise<HookRecord | undefined>;
  /** A hook's secret, for checking a delivery's signature; never for an answer. */
  secret(id: string): Promise<string | undefined>;
  /** A tenant's hooks by name (`null`: those outside any tenant; undefined: every tenant's). */
  list(tenantId: string | null | undefined): Promise<HookRecord[]>;
  /** Deletes a hook (by id) and its deliveries; false when there was none. */
  remove(id: string): Promise<boolean>;
  /**
   * Records a delivery (under its id, or its body's `sha256:` key) with the id of the run it is to
   * start, in one statement: the first to record a key wins, across replicas. Answers the delivery
   * as stored: the caller's when it won, else the earlier one, whose run is the answer to a
   * delivery sent again.
   */
  recordDelivery(
    input: Omit<HookDelivery, "received_at">,
  ): Promise<{ delivery: HookDelivery; first: boolean }>;
  /** Forgets a delivery whose run could not start. */
  forgetDelivery(hookId: string, deliveryId: string): Promise<void>;
  /**
   * Deletes the deliveries received before `before`; answers how many. A delivery id is kept long
   * past any sender's retry or redelivery (GitHub redelivers for 3 days), then forgotten.
   */
  pruneDeliveries(before: string): Promise<number>;
}

export function hooksRepo(ctx: StoreContext): HooksRepo {
  const records = () => ctx.db.selectFrom("hooks").select(recordColumns);
  const repo: HooksRepo = {
    async create(input) {
      const row = {
        id: input.id,
        name: input.name,
        tenant_id: tenantKey(input.tenant_id),
        workflow: input.workflow,
        vars: encodeJson(input.vars),
        created_at: isoTime(ctx.now()),
        created_by: input.created_by,
      };
      await writeUnique(
        ctx,
        () =>
          ctx.db
            .insertInto("hooks")
            .values({ ...row, secret: ctx.cipher.seal(input.secret) })
            .execute(),
        // Names are unique within a tenant: the hook in the way is the caller's tenant's own.
        (cause) =>
          new RunyardError("CONFLICT", `a hook named ${input.name} exists already`, {
            hint: `Pick another name, or remove that hook first (\`runyard hook rm ${input.name}\`).`,
            cause,
          }),
      );
      return toHookRecord(row);
    },
    async get(tenantId, name) {
      const row = await records()
        .where("tenant_id", "=", tenantKey(tenantId))
        .where("name", "=", name)
        .executeTakeFirst();
      return row && toHookRecord(row);
    },
    async byId(id) {
      const row = await records().where("id", "=", id).executeTakeFirst();
      return row && toHookRecord(row);
    },
    async secret(id) {
      const row = await ctx.db.selectFrom("hooks").select("secret").where("id", "=", id).executeTakeFirst();
      return row && ctx.cipher.open(row.secret);
    },
    async list(tenantId) {
      let select = records();
      if (tenantId !== undefined) select = select.where("tenant_id", "=", tenantKey(tenantId));
      return (await select.orderBy("name").orderBy("tenant_id").execute()).map(toHookRecord);
    },
    remove: (id) =>
      ctx.db.transaction().execute(async (trx) => {
        await trx.deleteFrom("hook_deliveries").where("hook_id", "=", id).execute();
        const result = await trx.deleteFrom("hooks").where("id", "=", id).executeTakeFirst();
        return result.numDeletedRows > 0n;
      }),
    async recordDelivery(input) {
      const inserted = await ctx.db
        .insertInto("hook_deliveries")
        .values({ ...input, received_at: isoTime(ctx.now()) })
        .onConflict((conflict) => conflict.columns(["hook_id", "delivery_id"]).doNothing())
        .returningAll()
        .executeTakeFirst();
      if (inserted?.run_id) return { delivery: { ...inserted, run_id: inserted.run_id }, first: true };
      const earlier = await ctx.db
        .selectFrom("hook_deliveries")
        .selectAll()
        .where("hook_id", "=", input.hook_id)
        .where("delivery_id", "=", input.delivery_id)
        .executeTakeFirst();
      // Gone between the two statements (its run could not start, or the hook was removed).
      if (!earlier?.run_id) return repo.recordDelivery(input);
      return { delivery: { ...earlier, run_id: earlier.run_id }, first: false };
    },
    async forgetDelivery(hookId, deliveryId) {
      await ctx.db
        .deleteFrom("hook_deliveries")
        .where("hook_id", "=", hookId)
        .where("delivery_id", "=", deliveryId)
        .execute();
    },
    async pruneDeliveries(before) {
      const result = await ctx.db
        .deleteFrom("hook_deliveries")
        .where("received_at", "<", isoTime(before))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
  return repo;
}
