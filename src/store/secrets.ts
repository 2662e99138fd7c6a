import type { Selectable } from "kysely";
import { isoTime, tenantKey, tenantOf } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { SecretsTable } from "./schema.js";

/** A stored secret as anyone may see it: its name and when it changed, never its value. */
export type SecretInfo = Omit<Selectable<SecretsTable>, "value" | "tenant_id"> & {
  /** The tenant it belongs to; null outside any tenant. */
  tenant_id: string | null;
};

/** What `secrets.set` stores: the value is sealed with the store's key before it is written. */
export interface NewSecret {
  tenant_id: string | null;
  name: string;
  value: string;
  updated_by?: string | null;
}

const infoColumns = ["tenant_id", "name", "created_at", "updated_at", "updated_by"] as const;

function toSecretInfo(row: Omit<Selectable<SecretsTable>, "value">): SecretInfo {
  return { ...row, tenant_id: tenantOf(row.tenant_id) };
}

/** The secrets of each tenant, sealed at rest; values leave the store only for starting a run. */
export interface SecretsRepo {
  /** Stores a secret of a tenant, or replaces its value; `created` says which. */
  set(input: NewSecret): Promise<{ secret: SecretInfo; created: boolean }>;
  /** A tenant's secrets by name, without values (`null`: those outside any tenant). */
  list(tenantId: string | null): Promise<SecretInfo[]>;
  /**
   * The values of those of `names` the tenant has stored; names it has not are left out. For the
   * server's own use (starting a run): no API answer ever holds a value.
   */
  values(tenantId: string | null, names: readonly string[]): Promise<Record<string, string>>;
  /** Deletes a tenant's secret; false when there was none. */
  remove(tenantId: string | null, name: string): Promise<boolean>;
}

export function secretsRepo(ctx: StoreContext): SecretsRepo {
  return {
    async set(input) {
      const tenant = tenantKey(input.tenant_id);
      const now = isoTime(ctx.now());
      const changes = {
        value: ctx.cipher.seal(input.value),
        updated_at: now,
        updated_by: input.updated_by ?? null,
      };
      const replace = () =>
        ctx.db
          .updateTable("secrets")
          .set(changes)
          .where("tenant_id", "=", tenant)
          .where("name", "=", input.name)
          .returning(infoColumns)
          .executeTakeFirst();
      const replaced = await replace();
      if (replaced) return { secret: toSecretInfo(replaced), created: false };
      try {
        const row = await ctx.db
          .insertInto("secrets")
          .values({ tenant_id: tenant, name: input.name, created_at: now, ...changes })
          .returning(infoColumns)
          .executeTakeFirstOrThrow();
        return { secret: toSecretInfo(row), created: true };
      } catch (error) {
        // Another writer stored the same name between the two statements: this value replaces it.
        if (ctx.dialect.constraintViolation(error) !== "unique") throw error;
        const row = await replace();
        if (!row) throw error;
        return { secret: toSecretInfo(row), created: false };
      }
    },
    async list(tenantId) {
      const rows = await ctx.db
        .selectFrom("secrets")
        .select(infoColumns)
        .where("tenant_id", "=", tenantKey(tenantId))
        .orderBy("name")
        .execute();
      return rows.map(toSecretInfo);
    },
    async values(tenantId, names) {
      if (names.length === 0) return {};
      const rows = await ctx.db
        .selectFrom("secrets")
        .select(["name", "value"])
        .where("tenant_id", "=", tenantKey(tenantId))
        .where("name", "in", [...new Set(names)])
        .execute();
      return Object.fromEntries(rows.map((row) => [row.name, ctx.cipher.open(row.value)]));
    },
    async remove(tenantId, name) {
      const result = await ctx.db
        .deleteFrom("secrets")
        .where("tenant_id", "=", tenantKey(tenantId))
        .where("name", "=", name)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
  };
}
