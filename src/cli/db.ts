import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { acquirePidLock } from "../core/pid-lock.js";
import { type CopyProgress, type CopyReport, copyStore } from "../store/copy.js";
import { type DatabaseLocation, parseDatabaseLocation } from "../store/database-location.js";
import { schemaLevel } from "../store/schema-upgrade.js";
import { readStoreStatus, type StoreStatus } from "../store/store-status.js";
import type { CliContext } from "./context.js";

export interface DbCopyFlags {
  from: string;
  to: string;
  batchSize?: string;
}

export interface DbStatusFlags {
  /** A postgres:// URL, a home folder or a SQLite file; default: what the server would use. */
  database?: string;
  json?: boolean;
}

/**
 * `runyard db copy --from FILE_OR_URL --to URL`: every row of the source store into an empty
 * target, checked by counting both sides again. Exit 0 copied and verified, 1 the copy failed
 * or the counts differ, 2 refused (bad arguments, a target that is not empty, unreachable).
 */
export async function dbCopy(flags: DbCopyFlags, ctx: CliContext): Promise<number> {
  const from = parseDatabaseLocation(flags.from, ctx.cwd, true);
  const to = parseDatabaseLocation(flags.to, ctx.cwd, false);
  const batchSize = flags.batchSize === undefined ? undefined : Number(flags.batchSize);
  if (batchSize !== undefined && !(Number.isInteger(batchSize) && batchSize > 0)) {
    throw new RunyardError(
      "USAGE",
      `--batch-size ${flags.batchSize}: expected a whole number of rows, like 2000`,
    );
  }
  // No server may write to either home while the copy runs; a running one makes this fail.
  const releases: Array<() => void> = [];
  try {
    for (const location of [from, to]) {
      if (location.dialect === "sqlite" && location.home && existsSync(location.home)) {
        releases.push(acquirePidLock(join(location.home, "server.lock"), `the home folder ${location.home}`));
      }
    }
  } catch (error) {
    for (const release of releases) release();
    throw error;
  }
  let report: CopyReport;
  try {
    report = await copyStore(from, to, {
      ...(batchSize ? { batchSize } : {}),
      onProgress: progressLines(ctx.stderr),
    });
  } finally {
    for (const release of releases) release();
  }
  ctx.stdout.write(renderCopyReport(report, from, to));
  if (report.mismatched.length > 0) {
    const lines = report.mismatched.map(
      (t) => `${t.name} ${t.source} in the source, ${t.target} in the target`,
    );
    ctx.stderr.write(
      `error: the counts differ after the copy: ${lines.join("; ")}\n` +
        "hint: Something wrote to a database during the copy: stop every server on both, drop and recreate the target, and copy again.\n",
    );
    return 1;
  }
  return 0;
}

/**
 * Progress on stderr: a line rewritten in place on a terminal (at most five a second), else plain
 * lines (at most one a second), plus the line that ends each table.
 */
function progressLines(
  stderr: NodeJS.WritableStream,
  now: () => number = Date.now,
): (p: CopyProgress) => void {
  const tty = Boolean((stderr as { isTTY?: boolean }).isTTY);
  const interval = tty ? 200 : 1000;
  let last = 0;
  return ({ table, copied, total }) => {
    const done = copied >= total;
    if (!done && now() - last < interval) return;
    last = now();
    const line = `copying ${table}: ${copied}/${total} rows`;
    stderr.write(tty ? `\r\u001b[K${line}${done ? "\n" : ""}` : `${line}\n`);
  };
}

function renderCopyReport(report: CopyReport, from: DatabaseLocation, to: DatabaseLocation): string {
  const out: string[] = [];
  out.push(`copied ${report.source} (${from.dialect}) to ${report.target} (${to.dialect})`);
  out.push(`schema: ${report.version ?? "none"}`);
  if (report.sourceMigrated.length > 0) {
    out.push(
      `the source was migrated first (${report.sourceMigrated.join(", ")}), as a server of this runyard would on its next start`,
    );
  }
  out.push("");
  const width = Math.max(5, ...report.tables.map((t) => t.name.length));
  const cell = (n: number | string): string => String(n).padStart(9);
  out.push(`${"table".padEnd(width)}${cell("source")}${cell("target")}`);
  for (const table of report.tables) {
    out.push(`${table.name.padEnd(width)}${cell(table.source)}${cell(table.target)}`);
    if (table.columnsLeftOut.length > 0) {
      out.push(`  columns the target lacks, not copied: ${table.columnsLeftOut.join(", ")}`);
    }
  }
  out.push("");
  if (report.notCopied.length > 0) {
    out.push(`not copied: ${report.notCopied.join(", ")} (migration bookkeeping and live server state)`);
  }
  if (report.unknown.length > 0) {
    out.push(`not copied, not runyard's tables: ${report.unknown.join(", ")}`);
  }
  if (report.mismatched.length === 0) {
    out.push("verified: every table holds the same number of rows on both sides");
  }
  out.push("");
  out.push(
    "Run specs and vars and job payloads and results were copied as stored: encrypted with the",
    "source's secret key. Servers on the target must use that same key:",
  );
  const keyFile = from.dialect === "sqlite" && from.home ? join(from.home, "secret.key") : undefined;
  if (keyFile && existsSync(keyFile)) {
    out.push(`  export RUNYARD_SECRET_KEY="$(cat ${shellQuote(keyFile)})"`);
  } else {
    out.push("  export RUNYARD_SECRET_KEY=...   # the RUNYARD_SECRET_KEY the source's servers ran with");
  }
  if (to.dialect === "postgres") {
    out.push(`  export RUNYARD_DATABASE_URL=${shellQuote(report.target)}   # with the real password for ***`);
  } else {
    out.push(
      `  runyard server --home ${shellQuote(dirname(to.path))}   # or copy secret.key into that folder`,
    );
  }
  out.push("Tokens were copied too: the source's admin and runner tokens work on the target.");
  return `${out.join("\n")}\n`;
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}

/** Where a `db` command works: --database, else RUNYARD_DATABASE_URL, else the home's SQLite file. */
export function databaseOf(flags: { database?: string }, ctx: CliContext): DatabaseLocation {
  if (flags.database) return parseDatabaseLocation(flags.database, ctx.cwd, true);
  if (ctx.config.databaseUrl) return { dialect: "postgres", url: ctx.config.databaseUrl };
  return parseDatabaseLocation(join(resolveHome(ctx.config, ctx.cwd), "runyard.db"), ctx.cwd, false);
}

/** `runyard db status`: which database, its schema version, pending migrations, rows per table. */
export async function dbStatus(flags: DbStatusFlags, ctx: CliContext): Promise<number> {
  const location = databaseOf(flags, ctx);
  const status = await readStoreStatus(location);
  if (flags.json) {
    ctx.stdout.write(
      `${JSON.stringify({
        database: status.database,
        dialect: status.dialect,
        exists: status.exists,
        state: schemaState(status),
        version: status.version ?? null,
        applied: status.applied,
        pending: status.pending,
        newer: status.newer,
        writers_from: status.writers?.writersFrom ?? null,
        writers_version: status.writers?.writersVersion ?? null,
        unfinished: status.unfinished,
        replicas: status.replicas,
        tables: Object.fromEntries(status.tables.map((t) => [t.name, t.rows])),
      })}\n`,
    );
    return 0;
  }
  ctx.stdout.write(renderStatus(status));
  return 0;
}

type SchemaState = "missing" | "empty" | "newer" | "pending" | "up_to_date";

function schemaState(status: StoreStatus): SchemaState {
  if (!status.exists) return "missing";
  if (status.applied.length === 0) return "empty";
  if (status.newer.length > 0) return "newer";
  return status.pending.length > 0 ? "pending" : "up_to_date";
}

function renderStatus(status: StoreStatus): string {
  const out = [`database  ${status.database}`, `dialect   ${status.dialect}`];
  const state = schemaState(status);
  switch (state) {
    case "missing":
      out.push("schema    none: the file does not exist yet; a server creates it on its first start");
      break;
    case "empty":
      out.push("schema    none: an empty database; a server migrates it on its first start");
      break;
    case "newer":
      out.push(
        status.writers && status.writers.writersFrom <= schemaLevel
          ? `schema    ${status.version}: migrated by a newer runyard (${status.newer.join(", ")} unknown here), which lets this one go on writing it`
          : `schema    ${status.version}: migrated by a newer runyard (${status.newer.join(", ")} unknown here); upgrade runyard before starting a server on it`,
      );
      break;
    case "pending":
      out.push(`schema    ${status.version}`);
      break;
    case "up_to_date":
      out.push(`schema    ${status.version} (up to date)`);
      break;
    default:
      assertExhaustive(state, "schema state");
  }
  out.push(
    status.pending.length > 0
      ? `pending   ${status.pending.join(", ")} (a server of this runyard applies them on start)`
      : "pending   none",
  );
  if (status.writers)
    out.push(
      `writers   ${status.writers.writersVersion} or later (schema level ${status.writers.writersFrom})`,
    );
  if (status.unfinished.length > 0) {
    out.push(
      `finish    ${status.unfinished.join(", ")}: waits for every older replica to stop (or \`runyard db migrate --finish\`)`,
    );
  }
  for (const replica of status.replicas) {
    const level = replica.schema_level === null ? "older than 0.2.0" : `schema level ${replica.schema_level}`;
    out.push(
      `replica   ${replica.id}: runyard ${replica.version} (${level}) on ${replica.hostname}, seen ${replica.seen_at}`,
    );
  }
  if (status.tables.length > 0) {
    const width = Math.max(...status.tables.map((t) => t.name.length));
    const digits = Math.max(...status.tables.map((t) => String(t.rows).length));
    out.push("rows");
    for (const table of status.tables) {
      out.push(`  ${table.name.padEnd(width)}  ${String(table.rows).padStart(digits)}`);
    }
  }
  return `${out.join("\n")}\n`;
}
