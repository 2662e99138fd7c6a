import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { RunyardError } from "../core/errors.js";

/** The database's file and the files SQLite keeps beside it. */
const databaseFiles = ["runyard.db", "runyard.db-wal", "runyard.db-shm"];

/** Makes the home folder private (0700), whatever mode it had, creating it when missing. */
export function prepareHome(home: string): { databasePath: string } {
  mkdirSync(home, { recursive: true, mode: 0o700 });
  chmodSync(home, 0o700);
  return { databasePath: join(home, "runyard.db") };
}

/**
 * Makes the database and its WAL files 0600, whatever mode they were created with (SQLite
 * creates them by the umask, usually 0644; later WAL files take the database's mode).
 */
export function protectDatabase(home: string): void {
  for (const name of databaseFiles) {
    const path = join(home, name);
    if (existsSync(path)) chmodSync(path, 0o600);
  }
}

/**
 * The key that encrypts secrets at rest: `configured` (RUNYARD_SECRET_KEY) when given, else the
 * one in `<home>/secret.key`, generated (0600) on first start.
 */
export function secretKeyFor(home: string, configured: string | undefined): string {
  if (configured !== undefined) return configured;
  const path = join(home, "secret.key");
  try {
    writeFileSync(path, `${randomBytes(32).toString("base64")}\n`, { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
  }
  chmodSync(path, 0o600);
  const key = readFileSync(path, "utf8").trim();
  if (key.length < 32) {
    throw new RunyardError("SECRET_KEY_MISMATCH", `${path} does not hold a key (32 or more characters)`, {
      hint: `Restore the key file from a backup, or set RUNYARD_SECRET_KEY to the key the database was made with.`,
    });
  }
  return key;
}
