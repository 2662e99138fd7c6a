import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type Kysely, Migrator } from "kysely";
import { inject } from "vitest";
import { openDatabase } from "../../src/store/database-location.js";
import { migrationLockTableName, migrations, migrationTableName } from "../../src/store/migrations/index.js";
import { createTestDatabase } from "./postgres.js";

/**
 * What a migration's test stands on: a fresh database of each backend, and a migrator over every
 * migration, so the test can stop just before its own, store rows as they were, and go on.
 */

const adminUrl = inject("postgresAdminUrl");

/** SQLite always; PostgreSQL where the suite's cluster runs (always in CI). */
export const migrationBackends = adminUrl ? (["sqlite", "postgres"] as const) : (["sqlite"] as const);

/** The migration that runs just before `name` (migrations run in name order), or "" for the first. */
export function migrationBefore(name: string): string {
  const names = Object.keys(migrations).sort();
  if (!names.includes(name)) throw new Error(`no migration is named ${name}`);
  return names[names.indexOf(name) - 1] ?? "";
}

export interface MigrationDatabase {
  db: Kysely<unknown>;
  migrator: Migrator;
}

/** Runs `use` on a fresh, unmigrated database of `backend`, closing it after. */
export async function onFreshDatabase(
  backend: "sqlite" | "postgres",
  use: (opened: MigrationDatabase) => Promise<void>,
): Promise<void> {
  const folder = backend === "sqlite" ? mkdtempSync(join(tmpdir(), "runyard-migration-")) : undefined;
  const location = folder
    ? { dialect: "sqlite" as const, path: join(folder, "runyard.db") }
    : { dialect: "postgres" as const, url: await createTestDatabase(adminUrl) };
  const opened = await openDatabase(location, { readonly: false });
  const db = opened.db as Kysely<unknown>;
  const migrator = new Migrator({
    db,
    provider: { getMigrations: async () => migrations },
    migrationTableName,
    migrationLockTableName,
  });
  try {
    await use({ db, migrator });
  } finally {
    await opened.close();
    if (folder) rmSync(folder, { recursive: true, force: true });
  }
}
