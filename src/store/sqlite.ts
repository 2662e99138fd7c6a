import { closeSync, mkdirSync, openSync, readSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import { Kysely, type SqliteDatabase, SqliteDialect } from "kysely";
import { RunyardError } from "../core/errors.js";
import { codeOf } from "./connection-loss.js";
import { sqliteDialect } from "./dialect.js";
import { createKyselyStore, type KyselyStoreOptions } from "./kysely-store.js";
import type { Database } from "./schema.js";
import type { Store } from "./types.js";

export interface SqliteStoreOptions extends Pick<KyselyStoreOptions, "logger" | "now" | "secretKey"> {
  /** How long a write waits for another process's write to finish. Default 5000 ms. */
  busyTimeoutMs?: number;
  /**
   * `normal` (default): a commit survives a crash of runyard, but the last ones may be lost if
   * the machine loses power. `full`: an fsync per commit survives that too, at about half the
   * event rate on a fast disk and far less on a slow one.
   */
  synchronous?: "normal" | "full";
}

export interface MemoryStoreOptions extends Pick<SqliteStoreOptions, "logger" | "now"> {
  /** Receives the warning that nothing persists. Default: a line on stderr. */
  warn?: (message: string) => void;
}

export const inMemoryWarning =
  "in-memory store: runs, events and tokens are lost when this process exits; use a file (--home) to keep them";

/**
 * The store in one SQLite file (created with its folder if missing), migrated on open.
 * WAL lets readers run beside the writer; see `synchronous` for what a commit survives.
 * Open a file from one process only: the server owns it.
 */
export async function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): Promise<Store> {
  return openSqlite(openSqliteDatabase(path, opts), path, opts);
}

const sqliteHeader = Buffer.from("SQLite format 3\u0000", "latin1");

/**
 * An existing file that is empty or not a SQLite database is refused before SQLite opens it:
 * SQLite would take an empty file for a new database and write one over it, and what was in
 * the file (a truncated copy, another program's data) would be lost for good.
 */
function refuseUnreadableFile(path: string): void {
  let size: number;
  try {
    size = statSync(path).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return; // a first start
    throw error;
  }
  if (size === 0) {
    throw new RunyardError("STORE_UNREADABLE", `the database file ${path} is empty (0 bytes)`);
  }
  const header = Buffer.alloc(sqliteHeader.length);
  const fd = openSync(path, "r");
  try {
    readSync(fd, header, 0, header.length, 0);
  } finally {
    closeSync(fd);
  }
  if (!header.equals(sqliteHeader)) {
    throw new RunyardError("STORE_UNREADABLE", `the database file ${path} is not a SQLite database`);
  }
}

/** SQLite's words for a file it cannot read as a database. */
function isDamaged(error: unknown): boolean {
  const code = codeOf(error);
  return code === "SQLITE_NOTADB" || code === "SQLITE_CORRUPT";
}

function damaged(filename: string, error: unknown): RunyardError {
  return new RunyardError(
    "STORE_UNREADABLE",
    `the database file ${filename} is damaged: ${(error as Error).message}`,
    { cause: error },
  );
}

/** The same store in memory, for tests and throwaway runs; warns that nothing persists. */
export async function openMemoryStore(opts: MemoryStoreOptions = {}): Promise<Store> {
  const warn = opts.warn ?? ((message: string) => process.stderr.write(`runyard: warning: ${message}\n`));
  warn(inMemoryWarning);
  return openSqlite(sqliteKysely(":memory:", {}), ":memory:", opts);
}

async function openSqlite(db: Kysely<Database>, filename: string, opts: SqliteStoreOptions): Promise<Store> {
  try {
    return await createKyselyStore(db, sqliteDialect, opts);
  } catch (error) {
    if (isDamaged(error)) throw damaged(filename, error);
    throw error;
  }
}

/**
 * A Kysely instance over the SQLite file at `path`, not migrated: the store's opening path, and
 * what `db copy` and `db status` read with. `readonly` opens an existing file without writing to
 * it (no WAL switch, no file created).
 */
export function openSqliteDatabase(
  path: string,
  opts: Pick<SqliteStoreOptions, "busyTimeoutMs" | "synchronous"> & { readonly?: boolean } = {},
): Kysely<Database> {
  if (!opts.readonly) mkdirSync(dirname(resolve(path)), { recursive: true });
  refuseUnreadableFile(path);
  return sqliteKysely(path, opts);
}

function sqliteKysely(
  filename: string,
  opts: Pick<SqliteStoreOptions, "busyTimeoutMs" | "synchronous"> & { readonly?: boolean },
): Kysely<Database> {
  let database: BetterSqlite3.Database | undefined;
  try {
    database = new BetterSqlite3(filename, opts.readonly ? { readonly: true, fileMustExist: true } : {});
    if (!opts.readonly) database.pragma("journal_mode = WAL");
    database.pragma(`busy_timeout = ${Math.max(0, Math.trunc(opts.busyTimeoutMs ?? 5000))}`);
    database.pragma("foreign_keys = ON");
    database.pragma(`synchronous = ${opts.synchronous === "full" ? "FULL" : "NORMAL"}`);
  } catch (error) {
    database?.close();
    if (isDamaged(error)) throw damaged(filename, error);
    throw new Error(`cannot open the store at ${filename}: ${(error as Error).message}`, { cause: error });
  }
  return new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(database) }) });
}

/**
 * Kysely prepares every query it runs. The store runs few distinct statements, so keeping the
 * recent ones prepared makes `events.append` about 15% faster. Sharing a statement is safe as
 * the store only runs them with `all`/`run`, never iterates one.
 */
function withStatementCache(database: BetterSqlite3.Database, size = 256): SqliteDatabase {
  const cache = new Map<string, BetterSqlite3.Statement>();
  return {
    close() {
      cache.clear();
      database.close();
    },
    prepare(sql) {
      let statement = cache.get(sql);
      if (statement) {
        cache.delete(sql);
      } else {
        statement = database.prepare(sql);
        if (cache.size >= size) cache.delete(cache.keys().next().value as string);
      }
      cache.set(sql, statement);
      return statement;
    },
  };
}
