import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, Migrator, sql } from "kysely";
import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "../../test/helpers/postgres.js";
import { createStore } from "./create-store.js";
import { type DatabaseLocation, openDatabase, parseDatabaseLocation } from "./database-location.js";
import { listTables } from "./introspect.js";
import { migrationLockTableName, migrations, migrationTableName } from "./migrations/index.js";
import { readStoreStatus } from "./store-status.js";

const adminUrl = inject("postgresAdminUrl");
const backends = adminUrl ? (["sqlite", "postgres"] as const) : (["sqlite"] as const);
const names = Object.keys(migrations);

async function newLocation(backend: "sqlite" | "postgres"): Promise<DatabaseLocation> {
  if (backend === "postgres") return { dialect: "postgres", url: await createTestDatabase(adminUrl) };
  return { dialect: "sqlite", path: join(mkdtempSync(join(tmpdir(), "runyard-status-")), "runyard.db") };
}

async function tables(location: DatabaseLocation): Promise<string[]> {
  const opened = await openDatabase(location, { readonly: true });
  try {
    return await listTables(opened.db as Kysely<unknown>, opened.dialect);
  } finally {
    await opened.close();
  }
}

describe.each(backends)("readStoreStatus on %s", (backend) => {
  it("reports an up-to-date store's version, no pending migration and rows per table", async () => {
    const location = await newLocation(backend);
    const store = await createStore(
      location.dialect === "postgres" ? { databaseUrl: location.url } : { sqlitePath: location.path },
    );
    await store.tokens.create({ kind: "admin", name: "admin" });
    await store.runs.create({ kind: "workflow", name: "a" });
    await store.runs.create({ kind: "workflow", name: "b" });
    await store.close();

    const status = await readStoreStatus(location);
    expect(status).toMatchObject({
      dialect: backend,
      exists: true,
      version: names.at(-1),
      pending: [],
      newer: [],
    });
    expect(status.applied).toEqual(names);
    expect(status.tables).toEqual(
      expect.arrayContaining([
        { name: "runs", rows: 2 },
        { name: "tokens", rows: 1 },
        { name: "run_events", rows: 0 },
      ]),
    );
    expect(status.tables.map((t) => t.name)).not.toContain(migrationTableName);
  });

  it("lists the migrations a store migrated by an older runyard lacks, and applies none", async () => {
    const location = await newLocation(backend);
    const opened = await openDatabase(location, { readonly: false });
    const migrator = new Migrator({
      db: opened.db as Kysely<unknown>,
      provider: { getMigrations: async () => migrations },
      migrationTableName,
      migrationLockTableName,
    });
    expect((await migrator.migrateTo("0001_initial")).error).toBeUndefined();
    await opened.close();

    const status = await readStoreStatus(location);
    expect(status).toMatchObject({ version: "0001_initial", pending: names.slice(1), newer: [] });
    expect((await readStoreStatus(location)).pending).toEqual(names.slice(1));
  });

  it("reports a database never migrated as empty, and leaves it without a table", async () => {
    const location = await newLocation(backend);
    if (location.dialect === "sqlite") await (await openDatabase(location, { readonly: false })).close();
    const status = await readStoreStatus(location);
    expect(status).toMatchObject({
      exists: true,
      version: undefined,
      applied: [],
      pending: names,
      tables: [],
    });
    expect(await tables(location)).toEqual([]);
  });

  it("names the migrations of a newer runyard", async () => {
    const location = await newLocation(backend);
    await (
      await createStore(
        location.dialect === "postgres" ? { databaseUrl: location.url } : { sqlitePath: location.path },
      )
    ).close();
    const opened = await openDatabase(location, { readonly: false });
    await sql`insert into runyard_migration (name, timestamp) values ('9999_future', '2099-01-01')`.execute(
      opened.db,
    );
    await opened.close();
    expect(await readStoreStatus(location)).toMatchObject({
      version: "9999_future",
      newer: ["9999_future"],
      pending: [],
    });
  });
});

describe("readStoreStatus on a SQLite file that is not there", () => {
  it("says it does not exist and does not create it", async () => {
    const path = join(mkdtempSync(join(tmpdir(), "runyard-status-")), "runyard.db");
    const status = await readStoreStatus({ dialect: "sqlite", path });
    expect(status).toMatchObject({ exists: false, version: undefined, pending: names, tables: [] });
    expect(existsSync(path)).toBe(false);
  });
});

describe("parseDatabaseLocation", () => {
  const cwd = mkdtempSync(join(tmpdir(), "runyard-location-"));

  it("takes postgres:// and postgresql:// URLs as PostgreSQL", () => {
    expect(parseDatabaseLocation("postgresql://u:p@h/db", cwd, true)).toEqual({
      dialect: "postgres",
      url: "postgresql://u:p@h/db",
    });
  });

  it("refuses another kind of URL as USAGE, without its password", () => {
    const error = (() => {
      try {
        return parseDatabaseLocation("mysql://root:hunter2@db/runyard", cwd, false);
      } catch (caught) {
        return caught;
      }
    })();
    expect(error).toMatchObject({
      code: "USAGE",
      message: expect.stringContaining("is not a PostgreSQL URL"),
    });
    expect((error as Error).message).not.toContain("hunter2");
  });

  it("finds runyard.db in a home folder, and knows the folder for the home", () => {
    const home = join(cwd, "home");
    mkdirSync(home);
    writeFileSync(join(home, "runyard.db"), "");
    const expected = { dialect: "sqlite", path: join(home, "runyard.db"), home };
    expect(parseDatabaseLocation("home", cwd, true)).toEqual(expected);
    expect(parseDatabaseLocation("home/runyard.db", cwd, true)).toEqual(expected);
  });

  it("says FILE_NOT_FOUND for a source that is not there, or a folder without runyard.db", () => {
    expect(() => parseDatabaseLocation("nowhere", cwd, true)).toThrow(
      expect.objectContaining({ code: "FILE_NOT_FOUND" }),
    );
    mkdirSync(join(cwd, "empty"));
    expect(() => parseDatabaseLocation("empty", cwd, true)).toThrow(/no runyard.db in the folder/);
  });

  it("takes a path that is not there as a file to create, or a folder when it ends with /", () => {
    expect(parseDatabaseLocation("new.db", cwd, false)).toEqual({
      dialect: "sqlite",
      path: join(cwd, "new.db"),
    });
    expect(parseDatabaseLocation("newhome/", cwd, false)).toEqual({
      dialect: "sqlite",
      path: join(cwd, "newhome", "runyard.db"),
      home: join(cwd, "newhome"),
    });
  });
});
