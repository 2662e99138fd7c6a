import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import type { TenantBotAlertsTable } from "./schema-bots.js";

/**
 * The alert rules a tenant's admin set for every bot of the tenant. `alerts` are as a bot's own
 * (the server checks their form); `notify` URLs are sealed at rest, as a bot's spec is (a
 * receiver's URL often carries its token).
 */
export type TenantBotAlertsRecord = Omit<TenantBotAlertsTable, "alerts" | "notify"> & {
  alerts: Record<string, unknown>[];
  notify: string[];
};

export interface TenantBotAlertsRepo {
  get(tenantId: string): Promise<TenantBotAlertsRecord | undefined>;
  /** Sets a tenant's rules (an insert or an update); answers what is stored. */
  set(
    tenantId: string,
    rules: { alerts: Record<string, unknown>[]; notify: string[]; updated_by: string | null },
  ): Promise<TenantBotAlertsRecord>;
  /** Removes them; false when there were none. */
  clear(tenantId: string): Promise<boolean>;
}

function parsedList<T>(text: string): T[] {
  try {
    const value: unknown = JSON.parse(text);
    return Array.isArray(value) ? (value as T[]) : [];
  } catch {
    return [];
  }
}

export function tenantBotAlertsRepo(ctx: StoreContext): TenantBotAlertsRepo {
  return {
    async get(tenantId) {
      const row = await ctx.db
        .selectFrom("tenant_bot_alerts")
        .selectAll()
        .where("tenant_id", "=", tenantId)
        .executeTakeFirst();
      return (
        row && { ...row, alerts: parsedList(row.alerts), notify: parsedList(ctx.cipher.open(row.notify)) }
      );
    },
    async set(tenantId, rules) {
      const record: TenantBotAlertsRecord = { tenant_id: tenantId, ...rules, updated_at: isoTime(ctx.now()) };
      const changes = {
        alerts: JSON.stringify(rules.alerts),
        notify: ctx.cipher.seal(JSON.stringify(rules.notify)),
        updated_at: record.updated_at,
        updated_by: rules.updated_by,
      };
      await ctx.db
        .insertInto("tenant_bot_alerts")
        .values({ tenant_id: tenantId, ...changes })
        .onConflict((conflict) => conflict.column("tenant_id").doUpdateSet(changes))
        .execute();
      return record;
    },
    async clear(tenantId) {
      const result = await ctx.db
        .deleteFrom("tenant_bot_alerts")
        .where("tenant_id", "=", tenantId)
        .executeTakeFirst();
      return result.numDeletedRows > 0n;
    },
  };
}
