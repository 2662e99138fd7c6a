import { existsSync, realpathSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Kysely } from "kysely";
import { RunyardError } from "../core/errors.js";
import { acquirePidLock } from "../core/pid-lock.js";
import { describeLocation, openDatabase } from "../store/database-location.js";
import { migrations } from "../store/migrations/index.js";
import { migrationLevel } from "../store/migrations/releases.js";
import { finishMigrations, upgradeSchema } from "../store/schema-upgrade.js";
import { readUpgradeStatus, type UpgradeStatus } from "../store/store-status.js";
import type { CliContext } from "./context.js";
import { databaseOf } from "./db.js";

export interface DbMigrateFlags {
  database?: string;
  /** Also run the finishing steps of applied migrations (docs/upgrading.md). */
  finish?: boolean;
  /** With --finish: run them even while replicas of an older runyard have rows. */
  force?: boolean;
}

/**
 * `runyard db migrate [--finish [--force]]`: what a server does to the schema as it starts, without
 * starting one (before a rollout, or once the old replicas are gone). Exit 0 done, 1 a finishing
 * step still waits for older replicas, 2 refused (a newer or blocked schema, bad arguments).
 */
export async function dbMigrate(flags: DbMigrateFlags, ctx: CliContext): Promise<number> {
  if (flags.force && !flags.finish) {
    throw new RunyardError("USAGE", "--force goes with --finish", {
      hint: "`runyard db migrate --finish --force` runs the finishing steps even while older replicas have rows.",
    });
  }
  const location = databaseOf(flags, ctx);
  const where = describeLocation(location);
  if (location.dialect === "sqlite" && !existsSync(location.path)) {
    throw new RunyardError("USAGE", `${where} does not exist`, {
      hint: "Give the home folder (--home) or database (--database) a runyard server has used; a server makes a new one on its first start.",
    });
  }
  // A running server holds a SQLite home; it migrates that itself. A link to a home's file is the home's.
  const file = location.dialect === "sqlite" ? realpathSync(location.path) : undefined;
  const home = file && basename(file) === "runyard.db" ? dirname(file) : undefined;
  const release = home ? acquirePidLock(join(home, "server.lock"), `the home folder ${home}`) : undefined;
  try {
    // Read on the connection that migrates, without `db status`'s row counts (a big table's count is slow).
    const opened = await openDatabase(location, { readonly: false });
    const db = opened.db as Kysely<unknown>;
    let before: UpgradeStatus;
    let after: UpgradeStatus;
    try {
      before = await readUpgradeStatus(db, opened.dialect);
      await upgradeSchema(db, opened.dialect, { olderReplicaWaitMs: ctx.config.replicaLeaseMs });
      if (flags.finish) await finishMigrations(db, { dialect: opened.dialect, alone: Boolean(flags.force) });
      after = await readUpgradeStatus(db, opened.dialect);
    } finally {
      await opened.close();
    }
    const applied = after.applied.filter((name) => !before.applied.includes(name));
    ctx.stdout.write(
      applied.length > 0
        ? `applied ${applied.join(", ")} to ${where}\n`
        : `${where} has every migration of this runyard (${after.version})\n`,
    );
    const done = (status: UpgradeStatus) =>
      status.applied.filter((name) => migrations[name]?.finish && !status.unfinished.includes(name));
    const finished = done(after).filter((name) => !done(before).includes(name));
    if (finished.length > 0) ctx.stdout.write(`finished ${finished.join(", ")}\n`);
    if (after.unfinished.length === 0) return 0;
    const level = migrationLevel(after.unfinished[0] ?? "0");
    const older = after.replicas.filter((replica) => (replica.schema_level ?? 0) < level);
    const who = older.map((replica) => `${replica.id} (runyard ${replica.version} on ${replica.hostname})`);
    ctx.stdout.write(
      `waiting to finish: ${after.unfinished.join(", ")}${who.length > 0 ? `; replicas of an older runyard have rows: ${who.join(", ")}` : ""}\n`,
    );
    if (!flags.finish) {
      ctx.stdout.write(
        "hint: the fleet's leader finishes them once no older replica is left, or run `runyard db migrate --finish` then.\n",
      );
      return 0;
    }
    ctx.stderr.write(
      "hint: Stop those replicas (a replica killed without stopping is removed by the fleet's leader a replica lease after its last heartbeat), then run this again. --force finishes anyway: replicas of 0.2.0 or later then stop writing, but those of 0.1.0 do not know to, so stop them first.\n",
    );
    return 1;
  } finally {
    release?.();
  }
}
