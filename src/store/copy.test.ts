import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, Migrator, sql } from "kysely";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { type CopyProgress, copiedTables, copyStore, storedValue, tablesNotCopied } from "./copy.js";
import { createStore } from "./create-store.js";
import { type DatabaseLocation, openDatabase } from "./database-location.js";
import { listColumns, listTables } from "./introspect.js";
import { migrationLockTableName, migrations, migrationTableName } from "./migrations/index.js";
import { readSchemaState } from "./migrations/state.js";
import { schemaLevel } from "./schema-upgrade.js";
import type { Store } from "./types.js";

const adminUrl = inject("postgresAdminUrl");
const secretKey = "copy-test-secret-key-0123456789abcdef";
const otherKey = "another-secret-key-0123456789abcdefgh";
const secretValue = "s3cr3t-value-never-in-clear";

type Backend = "sqlite" | "postgres";
const backends: Backend[] = adminUrl ? ["sqlite", "postgres"] : ["sqlite"];
const pairs = backends.flatMap((from) => backends.map((to) => ({ from, to })));

async function newLocation(backend: Backend): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return sqliteFile();
}

const stores: Store[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((store) => store.close()));
});

async function openStore(location: DatabaseLocation, key = secretKey): Promise<Store> {
  const store = await createStore(
    location.dialect === "postgres"
      ? { databaseUrl: location.url, secretKey: key }
      : { sqlitePath: location.path, secretKey: key },
  );
  stores.push(store);
  return store;
}

/** A used store: tokens, runs with encrypted vars, events over two runs, jobs with labels, a runner. */
async function seed(location: DatabaseLocation): Promise<{ runId: string; jobId: string }> {
  const store = await openStore(location);
  await store.tokens.create({ kind: "admin", name: "admin" });
  const runnerToken = await store.tokens.create({ kind: "runner", name: "r", group: "linux" });
  const run = await store.runs.create({
    kind: "workflow",
    name: "deploy",
    spec: { workflow: "name: deploy", vars: { API: secretValue } },
    vars: { API: secretValue },
    created_at: "2026-01-01T00:00:00.000Z",
  });
  const other = await store.runs.create({
    kind: "workflow",
    name: "other",
    created_at: "2026-01-01T00:00:01.000Z",
  });
  for (const [id, count] of [
    [run.id, 23],
    [other.id, 5],
  ] as const) {
    await store.events.append(
      Array.from({ length: count }, (_, i) => ({
        run_id: id,
        seq: i + 1,
        ts: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString(),
        type: "step.output" as const,
        step: "build",
        host: "local",
        stream: "stdout" as const,
        data: `line ${i + 1} ü ${"x".repeat(i)}\n`,
      })),
    );
  }
  await store.runs.update(run.id, { status: "success", last_notify_error: "webhook 500", steps: [] });
  const job = await store.jobs.create({
    run_id: run.id,
    requirements: { group: "linux", labels: ["docker", "linux"] },
    payload: { env: { API: secretValue } },
  });
  await store.jobs.cancelQueued(job.id, { exit_code: 0 });
  await store.artifacts.put({
    run_id: run.id,
    name: "diff.patch",
    job_id: job.id,
    content_type: "text/x-diff",
    content: `+API=${secretValue}\n`,
  });
  await store.runners.upsert({
    id: "runner-1",
    group: "linux",
    labels: ["docker"],
    mode: "all",
    capacity: 4,
    cpus: 2.5,
    memory: "8g",
    hostname: "build-1",
    token_id: runnerToken.record.id,
  });
  // A bot that crashed: sealed spec and last logs, integer and 0/1 columns, a partial unique index.
  const bot = await store.bots.create({
    tenant_id: null,
    owner: "user_1",
    name: "echo",
    mode: "simple",
    spec: { env: { API: secretValue } },
    expires_at: "2026-01-02T00:00:00.000Z",
  });
  await store.bots.update(bot.id, {
    state: "crashed",
    exit_code: 137,
    oom_killed: true,
    restarts: 3,
    last_logs: `API=${secretValue}\n`,
  });
  await store.close();
  return { runId: run.id, jobId: job.id };
}

/** Every row of every copied table, in primary-key order, as the driver gives them back. */
async function dump(location: DatabaseLocation): Promise<Record<string, Record<string, unknown>[]>> {
  const opened = await openDatabase(location, { readonly: false });
  const db = opened.db as Kysely<unknown>;
  try {
    const out: Record<string, Record<string, unknown>[]> = {};
    for (const table of copiedTables) {
      const columns = await listColumns(db, opened.dialect, table);
      const key = columns.filter((c) => c.primaryKey > 0).sort((a, b) => a.primaryKey - b.primaryKey);
      const { rows } = await sql<Record<string, unknown>>`
        select * from ${sql.table(table)} order by ${sql.join(key.map((c) => sql.id(c.name)))}`.execute(db);
      out[table] = rows.map((row) =>
        Object.fromEntries(columns.map((c) => [c.name, storedValue(row[c.name], c)])),
      );
    }
    return out;
  } finally {
    await opened.close();
  }
}

/** SQLite's own word for what each value is stored as (integer, real, text, null). */
async function sqliteTypes(path: string): Promise<string[]> {
  const opened = await openDatabase({ dialect: "sqlite", path }, { readonly: true });
  const db = opened.db as Kysely<unknown>;
  try {
    const out: string[] = [];
    for (const table of copiedTables) {
      for (const column of await listColumns(db, "sqlite", table)) {
        const { rows } = await sql<{ type: string }>`
          select distinct typeof(${sql.id(column.name)}) as type from ${sql.table(table)}`.execute(db);
        out.push(...rows.map((row) => `${table}.${column.name}:${row.type}`));
      }
    }
    return out.sort();
  } finally {
    await opened.close();
  }
}

async function migratedTo(location: DatabaseLocation, migration: string): Promise<Kysely<unknown>> {
  const opened = await openDatabase(location, { readonly: false });
  const db = opened.db as Kysely<unknown>;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName,
    migrationLockTableName,
  });
  const { error } = await migrator.migrateTo(migration);
  if (error) throw error;
  return db;
}

describe("the lists of copied and not copied tables", () => {
  it.each(backends)("name every table a freshly migrated %s store has", async (backend) => {
    const location = await newLocation(backend);
    await (await openStore(location)).close();
    const opened = await openDatabase(location, { readonly: true });
    try {
      const tables = await listTables(opened.db as Kysely<unknown>, opened.dialect);
      const forgotten = tables.filter((t) => !copiedTables.includes(t) && !tablesNotCopied.includes(t));
      expect(forgotten, "add each table to copiedTables or tablesNotCopied in copy.ts").toEqual([]);
      expect(tables).toEqual(expect.arrayContaining([...copiedTables]));
      const eventColumns = await listColumns(opened.db as Kysely<unknown>, opened.dialect, "run_events");
      expect(eventColumns.filter((c) => c.primaryKey > 0).map((c) => [c.name, c.primaryKey, c.kind])).toEqual(
        [
          ["run_id", 1, "text"],
          ["seq", 2, "integer"],
        ],
      );
    } finally {
      await opened.close();
    }
  });

  it("list every table after the tables its foreign keys point to", async () => {
    const location = await newLocation("sqlite");
    await (await openStore(location)).close();
    const opened = await openDatabase(location, { readonly: true });
    try {
      for (const [index, table] of copiedTables.entries()) {
        const { rows } = await sql<{ table: string }>`
          select "table" from pragma_foreign_key_list(${table})`.execute(opened.db);
        for (const { table: parent } of rows) {
          expect(copiedTables.indexOf(parent), `${table} references ${parent}`).toBeGreaterThanOrEqual(0);
          expect(copiedTables.indexOf(parent), `${table} references ${parent}`).toBeLessThan(index);
        }
      }
    } finally {
      await opened.close();
    }
  });
});

describe.each(pairs)("copyStore from $from to $to", ({ from, to }) => {
  it("copies every row as stored, in batches, and both sides count the same", async () => {
    const source = await newLocation(from);
    const target = await newLocation(to);
    await seed(source);
    const progress: CopyProgress[] = [];
    const report = await copyStore(source, target, { batchSize: 4, onProgress: (p) => progress.push(p) });

    expect(report.mismatched).toEqual([]);
    expect(report.tables.map((t) => t.name)).toEqual([...copiedTables]);
    expect(report.tables.find((t) => t.name === "run_events")).toMatchObject({ source: 28, target: 28 });
    expect(report.version).toBe(Object.keys(migrations).at(-1));
    expect(await dump(target)).toEqual(await dump(source));
    const events = progress.filter((p) => p.table === "run_events");
    expect(events.map((p) => p.copied)).toEqual([0, 4, 8, 12, 16, 20, 24, 28]);
    expect(events.every((p) => p.total === 28)).toBe(true);
  });

  it("copies encrypted columns as ciphertext: the target opens with the source's key only", async () => {
    const source = await newLocation(from);
    const target = await newLocation(to);
    const { runId } = await seed(source);
    await copyStore(source, target);

    expect(JSON.stringify(await dump(target))).not.toContain(secretValue);
    const store = await openStore(target);
    expect((await store.runs.get(runId))?.vars).toEqual({ API: secretValue });
    expect((await store.events.list(runId)).map((e) => e.seq)).toEqual(
      Array.from({ length: 23 }, (_, i) => i + 1),
    );
    expect(await store.tokens.count()).toBe(2);
    expect(await store.bots.list()).toMatchObject([
      {
        spec: { env: { API: secretValue } },
        last_logs: `API=${secretValue}\n`,
        oom_killed: true,
        exit_code: 137,
      },
    ]);
    await store.close();
    await expect(openStore(target, otherKey)).rejects.toMatchObject({ code: "SECRET_KEY_MISMATCH" });
  });

  it("refuses a target with a row in any table, naming it, and writes nothing", async () => {
    const source = await newLocation(from);
    const target = await newLocation(to);
    await seed(source);
    const used = await openStore(target);
    await used.tokens.create({ kind: "admin", name: "the target's own" });
    await used.close();
    const before = await dump(target);

    const error = await copyStore(source, target).catch((caught: unknown) => caught);
    expect(error).toMatchObject({
      code: "CONFLICT",
      message: expect.stringContaining("table tokens holds 1 row"),
      hint: expect.stringContaining("Use an empty database"),
    });
    expect(await dump(target)).toEqual(before);
  });
});

describe.each(backends)("copyStore on %s", (backend) => {
  it("migrates a source this runyard has not migrated yet, says so, and copies its rows", async () => {
    const source = await newLocation(backend);
    const target = await newLocation(backend);
    const old = await migratedTo(source, "0001_initial");
    await sql`insert into runs (id, kind, name, status, spec, vars, steps, created_at, last_seq)
      values ('run-old', 'workflow', 'old', 'success', '{}', '{}', '[]', '2025-01-01T00:00:00.000Z', 7)`.execute(
      old,
    );
    await old.destroy();

    const report = await copyStore(source, target);
    expect(report.sourceMigrated).toEqual(Object.keys(migrations).slice(1));
    expect(report.tables.find((t) => t.name === "runs")).toMatchObject({ source: 1, target: 1 });
    expect((await dump(target)).runs).toEqual([expect.objectContaining({ id: "run-old", last_seq: 7 })]);
    // Migrated as a server's start would: who may write it is recorded, on both sides.
    for (const location of [source, target]) {
      const opened = await openDatabase(location, { readonly: true });
      try {
        expect(await readSchemaState(opened.db as Kysely<unknown>)).toMatchObject({
          writersFrom: schemaLevel,
        });
      } finally {
        await opened.close();
      }
    }
  });

  it("refuses a source a newer runyard migrated, before touching the target", async () => {
    const source = await newLocation(backend);
    const target = await newLocation(backend);
    await seed(source);
    const opened = await openDatabase(source, { readonly: false });
    await sql`insert into runyard_migration (name, timestamp) values ('9999_future', '2099-01-01')`.execute(
      opened.db,
    );
    await opened.close();

    await expect(copyStore(source, target)).rejects.toMatchObject({
      code: "STORE_TOO_NEW",
      message: expect.stringContaining("migrated by a newer runyard (migration 9999_future)"),
    });
    if (target.dialect === "sqlite") expect(existsSync(target.path)).toBe(false);
    else expect(await tableCount(target)).toBe(0);
  });

  it("refuses a source that is not a runyard database", async () => {
    const source = await newLocation(backend);
    const target = await newLocation(backend);
    await (await openDatabase(source, { readonly: false })).close();
    await expect(copyStore(source, target)).rejects.toMatchObject({ code: "USAGE" });
  });
});

async function tableCount(location: DatabaseLocation): Promise<number> {
  const opened = await openDatabase(location, { readonly: true });
  try {
    return (await listTables(opened.db as Kysely<unknown>, opened.dialect)).length;
  } finally {
    await opened.close();
  }
}

describe.skipIf(!adminUrl)("copyStore round trip", () => {
  it("SQLite to PostgreSQL and back keeps every value and its SQLite type", async () => {
    const first = sqliteFile();
    const middle = await newLocation("postgres");
    const last = sqliteFile();
    await seed(first);
    await copyStore(first, middle, { batchSize: 5 });
    await copyStore(middle, last, { batchSize: 5 });
    const types = await sqliteTypes(last.path);
    expect(types).toEqual(await sqliteTypes(first.path));
    expect(types).toContain("runs.last_seq:integer");
    expect(types).toContain("runners.cpus:real");
    expect(types).toContain("runs.created_at:text");
    for (const table of copiedTables) {
      expect(await rawRows(last, table), table).toEqual(await rawRows(first, table));
    }
  });
});

/** The folders of this file's SQLite databases, removed after its tests. */
const sqliteFolders: string[] = [];
afterAll(() => {
  for (const folder of sqliteFolders.splice(0)) rmSync(folder, { recursive: true, force: true });
});

function sqliteFile(): { dialect: "sqlite"; path: string } {
  const folder = mkdtempSync(join(tmpdir(), "runyard-copy-"));
  sqliteFolders.push(folder);
  return { dialect: "sqlite", path: join(folder, "runyard.db") };
}

/** A table's rows exactly as the driver returns them, in a stable order. */
async function rawRows(location: DatabaseLocation, table: string): Promise<string[]> {
  const opened = await openDatabase(location, { readonly: true });
  try {
    const { rows } = await sql`select * from ${sql.table(table)}`.execute(opened.db);
    return sortRows(rows);
  } finally {
    await opened.close();
  }
}

function sortRows(rows: unknown[]): string[] {
  return rows.map((row) => JSON.stringify(row)).sort();
}

describe("storedValue", () => {
  it("turns PostgreSQL's bigint text back into numbers, and numbers in text columns into text", () => {
    expect(storedValue("42", { kind: "integer" })).toBe(42);
    expect(storedValue("9007199254740993", { kind: "integer" })).toBe(9007199254740993n);
    expect(storedValue(7, { kind: "integer" })).toBe(7);
    expect(storedValue("2.5", { kind: "real" })).toBe(2.5);
    expect(storedValue(12, { kind: "text" })).toBe("12");
    expect(storedValue("2026-01-01T00:00:00.000Z", { kind: "text" })).toBe("2026-01-01T00:00:00.000Z");
    expect(storedValue(null, { kind: "integer" })).toBeNull();
  });
});
