import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0041_run_submitter_user");

describe.each(migrationBackends)("the runs' user migration on %s", (backend) => {
  it("gives each stored run the user behind its token or the user who made it, and none for the rest", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into users (id, username, tenant_id, role, password_hash, created_at, password_changed_at, sessions_valid_after)
        values ('usr_ann', 'ann', 'acme', 'member', 'x', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`.execute(
        db,
      );
      for (const [id, user] of [
        ["tok_ann", "'usr_ann'"],
        ["tok_admin", "null"],
      ] as const) {
        await sql`insert into tokens (id, kind, name, tenant_id, secret_hash, created_at, user_id)
          values (${id}, 'user', ${id}, 'acme', ${`hash-${id}`}, '2026-01-01T00:00:00.000Z', ${sql.raw(user)})`.execute(
          db,
        );
      }
      for (const [run, by] of [
        ["run_token", "'tok_ann'"],
        ["run_signed_in", "'usr_ann'"],
        ["run_admin", "'tok_admin'"],
        ["run_revoked", "'tok_gone'"],
        ["run_nobody", "null"],
      ] as const) {
        await sql`insert into runs (id, kind, name, status, created_by, spec, vars, steps, created_at)
          values (${run}, 'workflow', 'w', 'queued', ${sql.raw(by)}, '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
          db,
        );
      }
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const rows = await sql<{ id: string; created_by_user: string | null }>`
        select id, created_by_user from runs order by id`.execute(db);
      expect(rows.rows).toEqual([
        { id: "run_admin", created_by_user: null },
        { id: "run_nobody", created_by_user: null },
        { id: "run_revoked", created_by_user: null },
        { id: "run_signed_in", created_by_user: "usr_ann" },
        { id: "run_token", created_by_user: "usr_ann" },
      ]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      const columns = await sql<{ id: string }>`select id from runs order by id`.execute(db);
      expect(columns.rows).toHaveLength(5);
    });
  });
});
