import pg from "pg";
import { expect, inject, it } from "vitest";
import { createDatabase, dropMadeDatabases } from "./helpers/postgres-cluster.js";

/**
 * The suite's own PostgreSQL hygiene (test/helpers/drop-test-databases.ts): a database a test made
 * and used is dropped at its file's end, or the autovacuum launcher keeps starting a worker for
 * it, in turn with every other left, for the rest of the run. The run's shared cluster; CI has it.
 */
const adminUrl = inject("postgresAdminUrl");

async function databases(): Promise<string[]> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    return (await admin.query<{ datname: string }>("select datname from pg_database")).rows.map(
      (row) => row.datname,
    );
  } finally {
    await admin.end();
  }
}

it("drops the databases this process made, a connection still open to one included, and keeps those made to be kept", async () => {
  const used = await createDatabase(adminUrl, "runyard_dropped");
  const kept = await createDatabase(adminUrl, "runyard_kept", "template0", { keep: true });
  const name = (url: string) => new URL(url).pathname.slice(1);
  // A test that left its store open: the drop ends its connection.
  const open = new pg.Client({ connectionString: used });
  open.on("error", () => {});
  await open.connect();
  await open.query("create table t (a int); insert into t values (1)");
  expect(await databases()).toEqual(expect.arrayContaining([name(used), name(kept)]));
  await dropMadeDatabases();
  const left = await databases();
  expect(left).not.toContain(name(used));
  expect(left).toContain(name(kept));
  await open.end().catch(() => {});
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  await admin.query(`drop database ${name(kept)}`);
  await admin.end();
});
