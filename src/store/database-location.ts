import { existsSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import type { Kysely } from "kysely";
import { RunyardError } from "../core/errors.js";
import { isPostgresUrl } from "./create-store.js";
import { connectPostgres, redactDatabaseUrl } from "./postgres.js";
import type { Database } from "./schema.js";
import { openSqliteDatabase } from "./sqlite.js";

/** Where a store lives, as `db copy` and `db status` are told: a PostgreSQL URL or a SQLite file. */
export type DatabaseLocation =
  | { dialect: "postgres"; url: string }
  | {
      dialect: "sqlite";
      /** The SQLite file (absolute). */
      path: string;
      /** The home folder holding the file, when the file is a home's `runyard.db`. */
      home?: string;
    };

/** A database opened without migrating it, for reading its schema and rows as they are. */
export interface OpenedDatabase {
  db: Kysely<Database>;
  dialect: "sqlite" | "postgres";
  close(): Promise<void>;
}

const databaseFileName = "runyard.db";

/**
 * Reads `text` as a PostgreSQL URL, a runyard home folder (its `runyard.db`) or a SQLite file.
 * With `mustExist`, a file or folder that is not there is FILE_NOT_FOUND; without, a path that
 * does not exist is a SQLite file to create, or a folder to create it in when it ends with `/`.
 */
export function parseDatabaseLocation(text: string, cwd: string, mustExist: boolean): DatabaseLocation {
  if (isPostgresUrl(text)) return { dialect: "postgres", url: text };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(text)) {
    throw new RunyardError("USAGE", `${redactDatabaseUrl(text)} is not a PostgreSQL URL`, {
      hint: "Give a postgres://user:password@host:5432/db URL, a runyard home folder, or a runyard.db file.",
    });
  }
  const path = resolve(cwd, text);
  if ((existsSync(path) && statSync(path).isDirectory()) || (!mustExist && text.endsWith("/"))) {
    const file = join(path, databaseFileName);
    if (mustExist && !existsSync(file)) {
      throw new RunyardError("FILE_NOT_FOUND", `no ${databaseFileName} in the folder ${path}`, {
        hint: "Give the home folder of the server (its --home or RUNYARD_HOME), which holds runyard.db.",
      });
    }
    return sqliteLocation(file);
  }
  if (mustExist && !existsSync(path)) {
    throw new RunyardError("FILE_NOT_FOUND", `${path} does not exist`, {
      hint: "Give the home folder of the server (its --home or RUNYARD_HOME), its runyard.db file, or a postgres:// URL.",
    });
  }
  return sqliteLocation(path);
}

function sqliteLocation(path: string): DatabaseLocation {
  return { dialect: "sqlite", path, ...(basename(path) === databaseFileName ? { home: dirname(path) } : {}) };
}

/** The location as messages print it: the URL without its password, or the file's path. */
export function describeLocation(location: DatabaseLocation): string {
  return location.dialect === "postgres" ? redactDatabaseUrl(location.url) : location.path;
}

/**
 * Opens the database without migrating it. `readonly` SQLite is opened read-only and must
 * exist; PostgreSQL is opened the same either way (callers read in read-only transactions).
 */
export async function openDatabase(
  location: DatabaseLocation,
  opts: { readonly: boolean; connectTimeoutMs?: number },
): Promise<OpenedDatabase> {
  const db =
    location.dialect === "postgres"
      ? await connectPostgres(location.url, {
          poolSize: 2,
          ...(opts.connectTimeoutMs ? { connectTimeoutMs: opts.connectTimeoutMs } : {}),
        }).catch((error: unknown) => {
          throw withUrlHint(error);
        })
      : openSqliteDatabase(location.path, { readonly: opts.readonly });
  return { db, dialect: location.dialect, close: () => db.destroy() };
}

/** The URL came from the command line here, not from RUNYARD_DATABASE_URL as the stock hint says. */
function withUrlHint(error: unknown): unknown {
  if (!(error instanceof RunyardError) || error.code !== "STORE_UNREACHABLE") return error;
  return new RunyardError(error.code, error.message, {
    hint: "Check that PostgreSQL runs at that host and port, that this machine may connect to it, and the user, password and database name in the URL (create the database first: createdb NAME).",
    cause: error.cause,
  });
}
