import type { Command } from "commander";
import type { CommandDeps } from "./options.js";

/** `runyard db`: copy and inspect the store. */
export function registerDb(program: Command, { ctx, setExit }: CommandDeps): void {
  const db = program.command("db").description("move and inspect the store (SQLite file or PostgreSQL)");
  db.command("copy")
    .description(
      "copy every row into an empty database, e.g. the SQLite home into PostgreSQL (stop servers first)",
    )
    .requiredOption(
      "--from <home|file|url>",
      "the source: a home folder, its runyard.db, or a postgres:// URL",
    )
    .requiredOption("--to <url|file>", "the empty target: a postgres:// URL (or a SQLite file)")
    .option("--batch-size <rows>", "rows per transaction (default 2000)")
    .action(async (flags) => setExit(await (await import("../db.js")).dbCopy(flags, await ctx())));
  db.command("migrate")
    .description(
      "apply this runyard's pending migrations, as a server does at start; --finish also runs their finishing steps once no older replica is left (docs/upgrading.md)",
    )
    .option("--database <url|file>", "default: RUNYARD_DATABASE_URL, else <home>/runyard.db")
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard)")
    .option("--finish", "also run the finishing steps (removing, renaming, tightening) of applied migrations")
    .option("--force", "with --finish: run them even while replicas of an older runyard have rows")
    .action(async (flags) =>
      setExit(await (await import("../db-migrate.js")).dbMigrate(flags, await ctx({ home: flags.home }))),
    );
  db.command("status")
    .description(
      "which database, its schema version, pending migrations and rows per table (changes nothing)",
    )
    .option("--database <url|file>", "default: RUNYARD_DATABASE_URL, else <home>/runyard.db")
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard)")
    .option("--json", "JSON output")
    .action(async (flags) =>
      setExit(await (await import("../db.js")).dbStatus(flags, await ctx({ home: flags.home }))),
    );
}
