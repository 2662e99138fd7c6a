import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import pg from "pg";

/**
 * A throwaway PostgreSQL cluster for tests: `initdb` and `pg_ctl` run as the `postgres` user
 * (initdb refuses root; a non-root user runs them as itself) in a fresh temp folder, on a free 127.0.0.1 port, with fsync off. Each test gets its own
 * database (`createDatabase`), made from template0, which takes milliseconds.
 */
export interface TestPostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  readonly adminUrl: string;
  readonly port: number;
  /** A new, empty database; returns its URL. */
  createDatabase(): Promise<string>;
  stop(): Promise<void>;
}

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

/**
 * Why PostgreSQL tests cannot run here, or undefined when they can. In CI the tests must not
 * skip: `describeOnPostgres` turns the reason into a failure there.
 */
export function postgresUnavailable(): string | undefined {
  if (process.env.RUNYARD_TEST_DATABASE_URL) return undefined;
  if (!findPostgresBin()) return "initdb/pg_ctl not found (PATH, /usr/local/bin, /usr/lib/postgresql/*/bin)";
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

function asPostgres(bin: string, args: string[]): void {
  const asRoot = process.getuid?.() === 0;
  const command = asRoot ? "runuser" : bin;
  const argv = asRoot ? ["-u", "postgres", "--", bin, ...args] : args;
  const result = spawnSync(command, argv, { encoding: "utf8" });
  if (result.status !== 0) {
    throw new Error(`${bin} ${args.join(" ")} failed: ${result.stderr || result.stdout || result.error}`);
  }
}

/** Starts a cluster (or uses `RUNYARD_TEST_DATABASE_URL`'s server when set). */
export async function startTestPostgres(): Promise<TestPostgres> {
  const given = process.env.RUNYARD_TEST_DATABASE_URL;
  if (given) return withDatabases(given, Number(new URL(given).port || 5432), async () => {});
  const bin = findPostgresBin();
  if (!bin) throw new Error(postgresUnavailable());
  const root = mkdtempSync(join(tmpdir(), "runyard-pg-"));
  chmodSync(root, 0o755);
  const dataDir = join(root, "data");
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    chownSync(root, uid, gid);
  }
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
  const options = `-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c listen_addresses=127.0.0.1 -c port=${port} -c unix_socket_directories=${root} -c max_connections=200`;
  asPostgres(join(bin, "pg_ctl"), ["-D", dataDir, "-o", options, "-l", join(root, "log"), "-w", "start"]);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return withDatabases(url, port, async () => {
    asPostgres(join(bin, "pg_ctl"), ["-D", dataDir, "-m", "immediate", "-w", "stop"]);
    rmSync(root, { recursive: true, force: true });
  });
}

function withDatabases(adminUrl: string, port: number, stopCluster: () => Promise<void>): TestPostgres {
  return { adminUrl, port, createDatabase: () => createTestDatabase(adminUrl), stop: stopCluster };
}

/** A new empty database on the cluster at `adminUrl`, from template0 (milliseconds); its URL. */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  const name = `runyard_test_${randomBytes(6).toString("hex")}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name} template template0`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
