import { type Kysely, sql } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * Spend budgets above the task (docs/agents.md "Spend budgets").
 *
 * `agent_usage`: one row per `agent.usage` event, keyed like the event (`run_id`, `seq`), with
 * whose it was (the run's tenant, `""` for none, and user: a personal token's user, else the
 * token) so spend is summed per tenant, user, agent, model and UTC day without reading the
 * events. `cost_usd` is null when the agent reported none: the server prices those tokens from
 * its price table when it reads them. Usage events stored before this migration are copied in.
 *
 * `budgets`: the dollar limits per UTC day and month an admin set for a tenant or a user
 * (`scope` `tenant` or `user`, `subject` its id or username); null: no limit of that period.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text, real } = columnTypes(db);
  await db.schema
    .createTable("agent_usage")
    .addColumn("run_id", text, (col) => col.notNull())
    .addColumn("seq", "bigint", (col) => col.notNull())
    .addColumn("at", text, (col) => col.notNull())
    .addColumn("tenant_id", text, (col) => col.notNull())
    .addColumn("user_id", text, (col) => col.notNull())
    .addColumn("agent", text, (col) => col.notNull())
    .addColumn("model", text, (col) => col.notNull())
    .addColumn("input_tokens", "bigint", (col) => col.notNull())
    .addColumn("output_tokens", "bigint", (col) => col.notNull())
    .addColumn("cost_usd", real)
    .addPrimaryKeyConstraint("agent_usage_pk", ["run_id", "seq"])
    .execute();
  await db.schema
    .createIndex("agent_usage_tenant_idx")
    .on("agent_usage")
    .columns(["tenant_id", "at"])
    .execute();
  await db.schema.createIndex("agent_usage_user_idx").on("agent_usage").columns(["user_id", "at"]).execute();
  await db.schema
    .createTable("budgets")
    .addColumn("scope", text, (col) => col.notNull())
    .addColumn("subject", text, (col) => col.notNull())
    .addColumn("usd_per_day", real)
    .addColumn("usd_per_month", real)
    .addColumn("updated_at", text, (col) => col.notNull())
    .addColumn("updated_by", text)
    .addPrimaryKeyConstraint("budgets_pk", ["scope", "subject"])
    .execute();
  await copyEarlierUsage(db);
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("budgets").execute();
  await db.schema.dropTable("agent_usage").execute();
}

/** The usage events already stored, as rows (they are few: one per model call). */
async function copyEarlierUsage(db: Kysely<unknown>): Promise<void> {
  const events = await sql<{
    run_id: string;
    seq: number | string;
    ts: string;
    data: string;
    tenant_id: string | null;
    created_by: string | null;
    token_user: string | null;
  }>`select e.run_id, e.seq, e.ts, e.data, r.tenant_id, r.created_by, t.user_id as token_user
      from run_events e join runs r on r.id = e.run_id left join tokens t on t.id = r.created_by
      where e.type = 'agent.usage'`.execute(db);
  for (const event of events.rows) {
    const data = JSON.parse(event.data) as {
      agent?: string;
      model?: string;
      input_tokens?: number;
      output_tokens?: number;
      cost_usd?: number;
    };
    await sql`insert into agent_usage (run_id, seq, at, tenant_id, user_id, agent, model, input_tokens, output_tokens, cost_usd)
      values (${event.run_id}, ${Number(event.seq)}, ${event.ts}, ${event.tenant_id ?? ""},
        ${event.token_user ?? event.created_by ?? ""}, ${data.agent ?? ""}, ${data.model ?? ""},
        ${data.input_tokens ?? 0}, ${data.output_tokens ?? 0}, ${data.cost_usd ?? null})`.execute(db);
  }
}
