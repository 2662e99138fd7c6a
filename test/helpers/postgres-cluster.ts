import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";
import { recordStart } from "../cost/record.js";
import { freePort } from "./free-port.js";

/**
 * A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` run as the `postgres` user (initdb
 * refuses root; a non-root user runs them as itself) in a fresh temp folder, on a free
 * 127.0.0.1 port, with fsync off. Shared by the tests (`postgres.ts`) and `npm run bench`, so
 * this module must not import vitest nor read test-only settings (the cost map's `recordStart`
 * loads vitest only inside a test run with its reporter on).
 */
export interface PostgresCluster {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly adminUrl: string;
  readonly port: number;
  /** The server log (`-l`); what `settings` such as `log_min_duration_statement` write goes here. */
  readonly logPath: string;
  /** `postgres --version` of the binaries used. */
  readonly version: string;
  /** A new, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** Stops the server as an operator's restart does (`pg_ctl stop -m fast`), keeping its data. */
  stopFast(): void;
  /** kill -9 of the postmaster (a crash); its backends end as they notice. Returns its pid. */
  killPostmaster(): number;
  /** Starts the stopped (or crashed) server again on the same port; resolves once it takes connections. */
  startAgain(): Promise<void>;
  /** Stops the cluster and removes its folder; synchronous, so it also works in an `exit` handler. Idempotent. */
  stopSync(): void;
  stop(): Promise<void>;
}

export interface PostgresClusterOptions {
  /** More `-c name=value` server settings, after (so over) the defaults. */
  settings?: Record<string, string | number>;
  /**
   * The cluster's folder in memory (/dev/shm) when it has room, as the tests' shared clusters
   * have it: they hold a database for every test that made one, over a GB and 26,000 files by
   * the run's end, which took 10 to 18 s to remove from disk. Otherwise, and by default, in the
   * temp folder.
   */
  inMemory?: boolean;
}

/** Room /dev/shm must have left for a cluster in memory (the tests' shared one grows to ~1.5 GB). */
const memoryRoomBytes = 4 * 1024 ** 3;

/** Where a cluster's folder goes: /dev/shm when asked and it has the room, else the temp folder. */
function clusterParent(inMemory: boolean): string {
  if (!inMemory) return tmpdir();
  try {
    const shm = statfsSync("/dev/shm");
    if (shm.bavail * shm.bsize >= memoryRoomBytes) return "/dev/shm";
  } catch {}
  return tmpdir();
}

/**
 * The settings every throwaway cluster runs with: durability off, it is thrown away; its shared
 * memory segments in its own folder, removed with it (an immediate stop leaves /dev/shm's).
 */
export const throwawaySettings = {
  fsync: "off",
  synchronous_commit: "off",
  full_page_writes: "off",
  dynamic_shared_memory_type: "mmap",
} as const;

/** Where the PostgreSQL server binaries are: PATH, /usr/local/bin, or Debian's versioned folder. */
export function findPostgresBin(): string | undefined {
  const candidates = [...(process.env.PATH ?? "").split(delimiter), "/usr/local/bin", ...debianBinFolders()];
  return candidates.find((dir) => dir && existsSync(join(dir, "initdb")) && existsSync(join(dir, "pg_ctl")));
}

function debianBinFolders(): string[] {
  const root = "/usr/lib/postgresql";
  if (!existsSync(root)) return [];
  return readdirSync(root)
    .sort((a, b) => Number(b) - Number(a))
    .map((version) => join(root, version, "bin"));
}

/** Why a cluster cannot be started here, or undefined when it can. */
export function postgresBinariesMissing(): string | undefined {
  if (!findPostgresBin()) return "initdb/pg_ctl not found (PATH, /usr/local/bin, /usr/lib/postgresql/*/bin)";
  return undefined;
}

function asPostgres(bin: string, args: string[]): string {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? "runuser" : bin;
  const argv = asRoot ? ["-u", "postgres", "--", bin, ...args] : args;
  const result = spawnSync(command, argv, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`${bin} ${args.join(" ")} failed: ${result.stderr || result.stdout || result.error}`);
  }
  return result.stdout;
}

/** initdb + pg_ctl start in a new temp folder; throws when the binaries are missing or a step fails. */
export async function startPostgresCluster(options: PostgresClusterOptions = {}): Promise<PostgresCluster> {
  recordStart("postgres");
  const bin = findPostgresBin();
  if (!bin) throw new Error(postgresBinariesMissing());
  const root = mkdtempSync(join(clusterParent(options.inMemory ?? false), "runyard-pg-"));
  chmodSync(root, 0o755);
  const dataDir = join(root, "data");
  const logPath = join(root, "log");
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(root, uid, gid);
  }
  let started = false;
  let stopped = false;
  const stopSync = (): void => {
    if (stopped) return;
    stopped = true;
    try {
      // Not when a test stopped it (or killed it) and left it so.
      if (started && existsSync(join(dataDir, "postmaster.pid")))
        asPostgres(join(bin, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  };
  try {
    asPostgres(join(bin, "initdb"), [
      "-D",
      dataDir,
      "-U",
      "postgres",
      "--auth=trust",
      "-E",
      "UTF8",
      "--no-sync",
    ]);
    const port = await freePort();
    const settings: Record<string, string | number> = {
      ...throwawaySettings,
      listen_addresses: "127.0.0.1",
      port,
      unix_socket_directories: root,
      max_connections: 200,
      ...options.settings,
    };
    const flags = Object.entries(settings)
      .map(([name, value]) => `-c ${name}=${value}`)
      .join(" ");
    started = true; // from here a failed start may still have left a postmaster running
    const start = (): string =>
      asPostgres(join(bin, "pg_ctl"), ["-D", dataDir, "-o", flags, "-l", logPath, "-w", "start"]);
    start();
    const version = asPostgres(join(bin, "postgres"), ["--version"]).trim();
    const adminUrl = `postgres://postgres@127.0.0.1:${port}/postgres`;
    return {
      adminUrl,
      port,
      logPath,
      version,
      createDatabase: () => createDatabase(adminUrl),
      stopFast: () => {
        asPostgres(join(bin, "pg_ctl"), ["-D", dataDir, "-m", "fast", "-w", "stop"]);
      },
      killPostmaster: () => {
        const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
        process.kill(pid, "SIGKILL");
        return pid;
      },
      startAgain: async () => {
        // After a kill -9 the old backends hold the shared memory until they notice and exit; a
        // start refuses until then.
        for (let tries = 1; ; tries++) {
          try {
            start();
            return;
          } catch (error) {
            if (tries >= 50) throw error;
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
        }
      },
      stopSync,
      stop: async () => stopSync(),
    };
  } catch (error) {
    try {
      stopSync();
    } catch {}
    throw error;
  }
}

/**
 * The databases `createDatabase` made in this process and not yet dropped, by their cluster's
 * admin URL (`dropMadeDatabases`).
 */
const made = new Map<string, Set<string>>();

/**
 * A new database on the cluster at `adminUrl`, a copy of `template` (template0: empty; a database
 * of the run's own that a store migrated: runyard's tables, no rows); its URL. Unless `keep`, it
 * is dropped with the others this process made at `dropMadeDatabases` (a test file's end).
 */
export async function createDatabase(
  adminUrl: string,
  prefix = "runyard_test",
  template = "template0",
  options: { keep?: boolean } = {},
): Promise<string> {
  const name = `${prefix}_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template ${template} strategy file_copy`);
  } finally {
    await admin.end();
  }
  if (!options.keep) made.set(adminUrl, (made.get(adminUrl) ?? new Set()).add(name));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Drops every database `createDatabase` made in this process (connections still open to one are
 * ended: `with (force)`). A database a test used stays in PostgreSQL's statistics, and the
 * autovacuum launcher starts a worker process for each such database in turn, one every
 * `autovacuum_naptime` (60 s) divided by their number: a run's store tests left some 300, and the
 * shared cluster started five processes a second for the rest of the run (14,500 in one run,
 * 690 s of CPU on a 2-core machine). What cannot be dropped (its cluster stopped by the test: the
 * connection is refused at once) goes with its cluster.
 */
export async function dropMadeDatabases(): Promise<void> {
  const clusters = [...made];
  made.clear();
  for (const [adminUrl, names] of clusters) {
    const admin = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5_000 });
    try {
      await admin.connect();
      for (const name of names) await admin.query(`drop database if exists ${name} with (force)`);
    } catch {
      // The cluster is gone or refuses: its databases go with it.
    } finally {
      await admin.end().catch(() => {});
    }
  }
}
