import type { Kysely } from "kysely";
import { columnTypes } from "./column-types.js";

/**
 * `idempotency_keys`: one row per caller and `Idempotency-Key` of a creating request. The row is
 * inserted before the request is served (the insert decides, across replicas, who serves it),
 * holds the SHA-256 of the request's body, and once a 2xx answer is given, its status and body,
 * which a retry with the same key gets again. `claim_id` tells one serving of the key from a
 * later one that took over a claim its server never finished (a crash mid-answer). Rows are
 * deleted after `expires_at`.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const { text } = columnTypes(db);
  await db.schema
    .createTable("idempotency_keys")
    .addColumn("owner", text, (col) => col.notNull())
    .addColumn("key", text, (col) => col.notNull())
    .addColumn("request_hash", text, (col) => col.notNull())
    .addColumn("claim_id", text, (col) => col.notNull())
    .addColumn("claimed_at", text, (col) => col.notNull())
    .addColumn("expires_at", text, (col) => col.notNull())
    .addColumn("status", "integer")
    .addColumn("response", text)
    .addPrimaryKeyConstraint("idempotency_keys_pk", ["owner", "key"])
    .execute();
  await db.schema
    .createIndex("idempotency_keys_expiry_idx")
    .on("idempotency_keys")
    .column("expires_at")
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable("idempotency_keys").execute();
}
