import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { migrations } from "./migrations/index.js";
import { inMemoryWarning, openMemoryStore, openSqliteStore } from "./sqlite.js";

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "runyard-store-"));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe("openSqliteStore", () => {
  it("creates the folder, the file and every table on first open", async () => {
    const path = join(dir, "nested", "home", "runyard.db");
    const store = await openSqliteStore(path);
    await store.close();

    const raw = new BetterSqlite3(path, { readonly: true });
    const tables = raw
      .prepare("select name from sqlite_master where type = 'table' order by name")
      .all()
      .map((row) => (row as { name: string }).name);
    const applied = raw.prepare("select name from runyard_migration").all();
    const journal = raw.pragma("journal_mode", { simple: true });
    raw.close();

    expect(tables).toEqual(
      expect.arrayContaining(["job_labels", "jobs", "run_events", "runners", "runs", "tokens"]),
    );
    expect(applied).toEqual(Object.keys(migrations).map((name) => ({ name })));
    expect(journal).toBe("wal");
  });

  it("keeps runs, events, jobs, runners and tokens when the file is opened again", async () => {
    const path = join(dir, "runyard.db");
    const first = await openSqliteStore(path);
    const run = await first.runs.create({ kind: "workflow", name: "deploy", vars: { A: "1" } });
    await first.events.append([
      { run_id: run.id, seq: 1, ts: "2026-01-01T00:00:00.000Z", type: "run.queued", kind: "workflow" },
    ]);
    const job = await first.jobs.create({
      run_id: run.id,
      requirements: { labels: ["linux"] },
      payload: { n: 1 },
    });
    await first.runners.upsert({
      id: "r1",
      group: "default",
      labels: [],
      mode: "all",
      capacity: 2,
      hostname: "h",
    });
    const { secret } = await first.tokens.create({ kind: "admin", name: "first admin" });
    await first.close();

    const second = await openSqliteStore(path);
    expect(await second.runs.get(run.id)).toMatchObject({ name: "deploy", vars: { A: "1" }, last_seq: 1 });
    expect(await second.events.list(run.id)).toHaveLength(1);
    expect(await second.jobs.get(job.id)).toMatchObject({
      requirements: { labels: ["linux"] },
      payload: { n: 1 },
    });
    expect(await second.runners.get("r1")).toMatchObject({ hostname: "h" });
    expect(await second.tokens.find(secret)).toMatchObject({ kind: "admin", name: "first admin" });
    await second.close();
  });

  it("enforces foreign keys", async () => {
    const store = await openSqliteStore(join(dir, "runyard.db"));
    await expect(
      store.jobs.create({ run_id: "run_missing", requirements: { labels: [] }, payload: null }),
    ).rejects.toMatchObject({
      code: "NOT_FOUND",
    });
    await store.close();
  });

  it("refuses a file a newer runyard migrated past what this one may write, naming that release", async () => {
    const path = join(dir, "runyard.db");
    await (await openSqliteStore(path)).close();
    const raw = new BetterSqlite3(path);
    raw.prepare("insert into runyard_migration (name, timestamp) values ('9999_future', 'x')").run();
    raw
      .prepare("update runyard_migration_state set writers_from = 9999, writers_version = 'runyard 9.0.0'")
      .run();
    raw.close();

    await expect(openSqliteStore(path)).rejects.toThrow(
      /migrated by a newer runyard \(migration 9999_future\); it is written by runyard 9\.0\.0 or later/,
    );
  });

  it("opens a file a newer runyard migrated in a way this one can live with, and applies nothing", async () => {
    const path = join(dir, "runyard.db");
    await (await openSqliteStore(path)).close();
    const raw = new BetterSqlite3(path);
    raw.prepare("insert into runyard_migration (name, timestamp) values ('9999_future', 'x')").run();
    raw.close();

    const store = await openSqliteStore(path);
    await store.close();
    const again = new BetterSqlite3(path);
    const names = again.prepare("select name from runyard_migration order by name").all() as Array<{
      name: string;
    }>;
    again.close();
    expect(names.at(-1)?.name).toBe("9999_future");
  });

  it("refuses a file that is not a database, and leaves its bytes alone", async () => {
    const path = join(dir, "notes.txt");
    const text = "this is not sqlite, just some text that is long enough to have a header".repeat(20);
    writeFileSync(path, text);
    await expect(openSqliteStore(path)).rejects.toMatchObject({
      code: "STORE_UNREADABLE",
      message: expect.stringMatching(/notes\.txt is not a SQLite database/),
      hint: expect.stringMatching(/move it aside/),
    });
    expect(readFileSync(path, "utf8")).toBe(text);
  });

  it("refuses an empty file instead of making a new database in it", async () => {
    const path = join(dir, "runyard.db");
    writeFileSync(path, "");
    await expect(openSqliteStore(path)).rejects.toMatchObject({
      code: "STORE_UNREADABLE",
      message: `the database file ${path} is empty (0 bytes)`,
    });
    expect(statSync(path).size).toBe(0);
  });

  it("refuses a database whose pages are damaged", async () => {
    const path = join(dir, "runyard.db");
    await (await openSqliteStore(path)).close();
    const bytes = readFileSync(path);
    bytes.fill(0x5a, 100, Math.min(bytes.length, 8192));
    writeFileSync(path, bytes);
    await expect(openSqliteStore(path)).rejects.toMatchObject({ code: "STORE_UNREADABLE" });
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it("closes twice without complaint", async () => {
    const store = await openSqliteStore(join(dir, "runyard.db"));
    await store.close();
    await expect(store.close()).resolves.toBeUndefined();
  });
});

describe("openMemoryStore", () => {
  it("warns that nothing persists, then works like the file store", async () => {
    const warnings: string[] = [];
    const store = await openMemoryStore({ warn: (message) => warnings.push(message) });
    expect(warnings).toEqual([
      "in-memory store: runs, events and tokens are lost when this process exits; use a file (--home) to keep them",
    ]);
    expect(inMemoryWarning).toBe(warnings[0]);

    const run = await store.runs.create({ kind: "workflow", name: "quick" });
    expect(await store.runs.get(run.id)).toMatchObject({ name: "quick", status: "queued" });
    await store.close();
  });
});
