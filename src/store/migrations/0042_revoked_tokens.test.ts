import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0042_revoked_tokens");

describe.each(migrationBackends)("the revoked tokens migration on %s", (backend) => {
  it("keeps whose each revoked token was from the audit log, and gives the runs they made since their user", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into users (id, username, tenant_id, role, password_hash, created_at, password_changed_at, sessions_valid_after)
        values ('usr_ann', 'ann', 'acme', 'member', 'x', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z')`.execute(
        db,
      );
      let n = 0;
      for (const [target, details, outcome] of [
        ["tok_ann", '{"kind":"user","name":"laptop","user_id":"usr_ann"}', "ok"],
        ["tok_admin", '{"kind":"admin","name":"ci","user_id":null}', "ok"],
        ["tok_denied", '{"kind":"user","name":"x","user_id":"usr_bob"}', "denied"],
        ["tok_odd", "not json", "ok"],
        ["tok_removed", '{"kind":"user","name":"y","user_id":"usr_removed"}', "ok"],
      ] as const) {
        n += 1;
        await sql`insert into audit_events (id, at, action, target, outcome, details)
          values (${`aud_${n}`}, ${`2026-01-0${n}T00:00:00.000Z`}, 'token.revoke', ${target}, ${outcome}, ${details})`.execute(
          db,
        );
      }
      for (const [run, by, user] of [
        ["run_hook", "tok_ann", null],
        ["run_admin", "tok_admin", null],
        ["run_kept", "tok_ann", "usr_ann"],
        ["run_unknown", "tok_gone", null],
        ["run_removed", "tok_removed", null],
      ] as const) {
        await sql`insert into runs (id, kind, name, status, created_by, created_by_user, spec, vars, steps, created_at)
          values (${run}, 'workflow', 'w', 'queued', ${by}, ${user}, '{}', '{}', '[]', '2026-01-09T00:00:00.000Z')`.execute(
          db,
        );
      }
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const revoked = await sql<{ id: string; user_id: string | null; revoked_at: string }>`
        select id, user_id, revoked_at from revoked_tokens order by id`.execute(db);
      expect(revoked.rows).toEqual([
        { id: "tok_admin", user_id: null, revoked_at: "2026-01-02T00:00:00.000Z" },
        { id: "tok_ann", user_id: "usr_ann", revoked_at: "2026-01-01T00:00:00.000Z" },
      ]);
      const runs = await sql<{ id: string; created_by_user: string | null }>`
        select id, created_by_user from runs order by id`.execute(db);
      expect(runs.rows).toEqual([
        { id: "run_admin", created_by_user: null },
        { id: "run_hook", created_by_user: "usr_ann" },
        { id: "run_kept", created_by_user: "usr_ann" },
        { id: "run_removed", created_by_user: null },
        { id: "run_unknown", created_by_user: null },
      ]);
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      const tables = await sql<{ n: number | string }>`select count(*) as n from runs`.execute(db);
      expect(Number(tables.rows[0]?.n)).toBe(5);
    });
  });
});
