import { type Kysely, sql } from "kysely";
import pg from "pg";
import { pino } from "pino";
import { describe, expect, inject, it } from "vitest";
import { migrationBackends, onFreshDatabase } from "../../test/helpers/migration-db.js";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { silentLogger } from "../core/logger.js";
import { migrations } from "./migrations/index.js";
import { releases } from "./migrations/releases.js";
import { openPostgresStore } from "./postgres.js";
import { finishMigrations, readSchemaState, schemaLevel, upgradeSchema } from "./schema-upgrade.js";

const oldRelease = releases[0];
if (!oldRelease) throw new Error("no release is listed");

const state = async (db: Kysely<unknown>) => readSchemaState(db);
const finished = async (db: Kysely<unknown>) =>
  (
    await sql<{ name: string }>`select name from runyard_migration_finished order by name`.execute(db)
  ).rows.map((row) => row.name);
const applied = async (db: Kysely<unknown>) =>
  (await sql<{ name: string }>`select name from runyard_migration order by name`.execute(db)).rows.map(
    (row) => row.name,
  );

/** A replica's row as a runyard of 0.1.0 writes it (no level), `seen_at` as given. */
const oldReplica = (db: Kysely<unknown>, id: string, seenAt: string) =>
  sql`insert into replicas (id, hostname, url, version, started_at, seen_at)
    values (${id}, 'old-host', null, '0.1.0', ${seenAt}, ${seenAt})`.execute(db);

describe("releases", () => {
  it("end with this package's version and newest migration", async () => {
    const { version } = await import("../core/version.js");
    expect(releases.at(-1)?.version).toBe(version);
    expect(releases.at(-1)?.newestMigration).toBe(Object.keys(migrations).sort().at(-1));
    for (const release of releases.slice(0, -1)) expect(release.commit).toMatch(/^[0-9a-f]{40}$/);
  });
});

describe.each(migrationBackends)("a schema upgrade on %s", (backend) => {
  it("makes a new database whole: every migration finished, written by this release", async () => {
    await onFreshDatabase(backend, async ({ db }) => {
      await upgradeSchema(db, backend, { logger: silentLogger });
      expect(await finished(db)).toEqual(["0045_schema_levels"]);
      expect(await state(db)).toEqual({
        writersFrom: schemaLevel,
        writersVersion: `runyard ${releases.at(-1)?.version}`,
      });
      // 0045's finish: a replica's row must name its level.
      await expect(oldReplica(db, "old", "2026-11-29T00:00:00.000Z")).rejects.toThrow(
        /schema_level|NOT NULL|null value/i,
      );
    });
  });

  it("adds 0045 beside a 0.1.0 replica's row and leaves its finish until that row is gone", async () => {
    await onFreshDatabase(backend, async ({ db, migrator }) => {
      expect((await migrator.migrateTo(oldRelease.newestMigration)).error).toBeUndefined();
      await oldReplica(db, "old", "2026-11-29T00:00:00.000Z");
      // SQLite is one process's: its start finishes at once, whatever rows earlier starts left.
      if (backend === "sqlite") {
        await upgradeSchema(db, backend, { logger: silentLogger });
        expect(await finished(db)).toEqual(["0045_schema_levels"]);
        return;
      }
      await upgradeSchema(db, backend, { logger: silentLogger, olderReplicaWaitMs: 60_000 });
      expect(await applied(db)).toContain("0045_schema_levels");
      expect(await finished(db)).toEqual([]);
      // 0.1.0 may still write: the level its replicas have.
      expect(await state(db)).toEqual({ writersFrom: 44, writersVersion: "runyard 0.1.0" });
      await oldReplica(db, "old-2", "2026-11-29T00:00:01.000Z");
      expect(await finishMigrations(db, { dialect: backend, alone: false })).toEqual([]);

      await sql`delete from replicas`.execute(db);
      expect(await finishMigrations(db, { dialect: backend, alone: false })).toEqual(["0045_schema_levels"]);
      expect(await state(db)).toEqual({ writersFrom: 45, writersVersion: "runyard 0.2.0" });
      expect(await finishMigrations(db, { dialect: backend, alone: false })).toEqual([]);
    });
  });
});

describe.runIf((migrationBackends as readonly string[]).includes("postgres"))(
  "a schema upgrade beside older replicas",
  () => {
    it("refuses to apply a migration they cannot live with while one of them heartbeats, naming it", async () => {
      await onFreshDatabase("postgres", async ({ db, migrator }) => {
        expect((await migrator.migrateTo("0019_idempotency_keys")).error).toBeUndefined();
        await oldReplica(db, "old-alive", "2026-11-29T00:00:00.000Z");
        await oldReplica(db, "old-dead", "2026-11-29T00:00:00.000Z");
        // The live one beats once the start has read the rows, as its runyard would; the dead
        // one's row never changes.
        let beat: Promise<unknown> | undefined;
        const logger = pino(
          { level: "info" },
          {
            write: (line: string) => {
              if (line.includes("checking that they are stopped"))
                beat =
                  sql`update replicas set seen_at = '2026-11-29T00:00:01.000Z' where id = 'old-alive'`.execute(
                    db,
                  );
            },
          },
        );
        await expect(
          upgradeSchema(db, "postgres", { logger, olderReplicaWaitMs: 60_000 }),
        ).rejects.toMatchObject({
          code: "UPGRADE_BLOCKED",
          message: expect.stringMatching(
            /old-alive \(runyard 0\.1\.0 on old-host\).*migration 0020_hook_names_per_tenant/,
          ),
        });
        await beat;
        expect((await applied(db)).at(-1)).toBe("0019_idempotency_keys");
      });
    });

    it("migrates past rows that do not change for the wait: their replicas stopped", async () => {
      await onFreshDatabase("postgres", async ({ db, migrator }) => {
        expect((await migrator.migrateTo("0019_idempotency_keys")).error).toBeUndefined();
        await oldReplica(db, "old-dead", "2026-11-29T00:00:00.000Z");
        await upgradeSchema(db, "postgres", { logger: silentLogger, olderReplicaWaitMs: 300 });
        expect((await applied(db)).at(-1)).toBe("0045_schema_levels");
        // Its row is still there (the leader removes it): 0045's finish waits for that.
        expect(await finished(db)).toEqual([]);
      });
    });

    it("migrates a database from before the replicas table, which no replica can have a row in", async () => {
      await onFreshDatabase("postgres", async ({ db, migrator }) => {
        expect((await migrator.migrateTo("0002_runner_owner")).error).toBeUndefined();
        await upgradeSchema(db, "postgres", { logger: silentLogger });
        expect((await applied(db)).at(-1)).toBe("0045_schema_levels");
        expect(await finished(db)).toEqual(["0045_schema_levels"]);
      });
    });

    it("makes a starting replica wait for a finish in flight, then refuses it the database that finish left", async () => {
      const url = await createTestDatabase(inject("postgresAdminUrl"));
      const store = await openPostgresStore(url);
      // A newer release's finish: it holds the writers row, and raises the level as it commits.
      const finisher = new pg.Client({ connectionString: url });
      await finisher.connect();
      try {
        await finisher.query("begin");
        await finisher.query("select writers_from from runyard_migration_state where id = 1 for update");
        await finisher.query(
          "update runyard_migration_state set writers_from = 46, writers_version = 'runyard 0.3.0'",
        );
        let settled: unknown;
        const joining = store.fleet
          .join({ id: "starting", hostname: "h", url: null, version: "0.2.0", schema_level: schemaLevel })
          .then(
            () => "joined",
            (error: unknown) => error,
          )
          .then((outcome) => {
            settled = outcome;
            return outcome;
          });
        // Commit only once the join waits on the row: read before it, the level would still be 45.
        const waiting = async (): Promise<boolean> =>
          (
            await finisher.query(
              "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'",
            )
          ).rowCount !== 0;
        while (settled === undefined && !(await waiting()))
          await new Promise((resolve) => setImmediate(resolve));
        expect(settled, "the join did not wait for the finish").toBeUndefined();
        await finisher.query("commit");
        expect(await joining).toMatchObject({
          code: "STORE_TOO_NEW",
          message: expect.stringContaining("runyard 0.3.0 or later"),
        });
        expect((await finisher.query("select id from replicas")).rows).toEqual([]);
      } finally {
        await finisher.end();
        await store.close();
      }
    });
  },
);
