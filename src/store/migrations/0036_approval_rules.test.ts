import { sql } from "kysely";
import { describe, expect, it } from "vitest";
import { migrationBackends, migrationBefore, onFreshDatabase } from "../../../test/helpers/migration-db.js";

const before = migrationBefore("0036_approval_rules");

describe.each(migrationBackends)("the approval rules migration on %s", (backend) => {
  it("keeps stored approvals as one answer from anyone listed, counts each approver once, and goes down keeping them", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      await sql`insert into runs (id, kind, name, status, created_by, spec, vars, steps, created_at)
        values ('run_1', 'workflow', 'rel', 'running', 'tok_1', '{}', '{}', '[]', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      await sql`insert into approvals (run_id, step, message, approvers, deadline, created_at)
        values ('run_1', 'gate', 'ship it?', '["ann","bob"]', '2026-01-04T00:00:00.000Z', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      await sql`insert into approvals (run_id, step, message, approvers, deadline, decision, answered_by, comment, answered_at, created_at)
        values ('run_1', 'done', 'earlier', '[]', '2026-01-04T00:00:00.000Z', 'approved', 'ann', 'ok', '2026-01-03T01:00:00.000Z', '2026-01-03T00:00:00.000Z')`.execute(
        db,
      );
      expect((await migrator.migrateToLatest()).error).toBeUndefined();

      const kept = await sql<{
        step: string;
        required: number | string;
        self_approval: number | string;
        not_before: string | null;
        form: string | null;
        inputs: string | null;
        approved_by: string | null;
        decision: string | null;
        answered_by: string | null;
      }>`select step, required, self_approval, not_before, form, inputs, approved_by, decision, answered_by
        from approvals order by step`.execute(db);
      expect(
        kept.rows.map((row) => ({
          ...row,
          required: Number(row.required),
          self_approval: Number(row.self_approval),
        })),
      ).toEqual([
        {
          step: "done",
          required: 1,
          self_approval: 1,
          not_before: null,
          form: null,
          inputs: null,
          approved_by: null,
          decision: "approved",
          answered_by: "ann",
        },
        {
          step: "gate",
          required: 1,
          self_approval: 1,
          not_before: null,
          form: null,
          inputs: null,
          approved_by: null,
          decision: null,
          answered_by: null,
        },
      ]);

      const vote = (voter: string, step = "gate") =>
        sql`insert into approval_votes (run_id, step, voter, decision, inputs, answered_at)
          values ('run_1', ${step}, ${voter}, 'approved', '{"REGION":"eu"}', '2026-01-03T02:00:00.000Z')`.execute(
          db,
        );
      await vote("ann");
      await vote("bob");
      // An approver counts once: a second answer from ann is refused by the key.
      await expect(vote("ann")).rejects.toThrow();
      const votes = await sql<{ voter: string }>`select voter from approval_votes order by voter`.execute(db);
      expect(votes.rows).toEqual([{ voter: "ann" }, { voter: "bob" }]);

      // Down past it (and the later ones) keeps the approvals stored, without the columns it added.
      expect((await migrator.migrateTo(before)).error).toBeUndefined();
      const tables = await sql<{ n: number | string }>`select count(*) as n from approvals`.execute(db);
      expect(Number(tables.rows[0]?.n)).toBe(2);
      await expect(sql`select * from approval_votes`.execute(db)).rejects.toThrow();
      await expect(sql`select required from approvals`.execute(db)).rejects.toThrow();
      // And up again over the kept rows.
      expect((await migrator.migrateToLatest()).error).toBeUndefined();
      const again = await sql<{ required: number | string }>`select required from approvals`.execute(db);
      expect(again.rows.map((row) => Number(row.required))).toEqual([1, 1]);
    });
  });
});
