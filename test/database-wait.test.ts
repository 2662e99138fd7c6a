import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { type Kysely, Migrator } from "kysely";
import pg from "pg";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { openDatabase } from "../src/store/database-location.js";
import { migrationLockTableName, migrations, migrationTableName } from "../src/store/migrations/index.js";
import { tempDir } from "./helpers/cli.js";
import { migrationBefore } from "./helpers/migration-db.js";
import { type PostgresCluster, startPostgresCluster } from "./helpers/postgres-cluster.js";
import { adminToken, freePort, type Proc, startCli } from "./helpers/server.js";

/*
 * A replica started while its PostgreSQL is down waits for it: it answers at once (alive, not
 * ready, the API 503 with Retry-After), and serves once the database is up; past
 * RUNYARD_DATABASE_WAIT it exits with STORE_UNREACHABLE as before.
 */

const adminUrl = inject("postgresAdminUrl");
const secretKey = "database-wait-secret-key-0123456789abcdef";

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

/**
 * A PostgreSQL cluster of this file's own (its tests stop it), made once and started again for
 * each test that finds it stopped; each test has a database of its own on it.
 */
let cluster: PostgresCluster | undefined;
let stopped = false;
async function runningCluster(): Promise<PostgresCluster> {
  if (!cluster) cluster = await startPostgresCluster();
  else if (stopped) await cluster.startAgain();
  stopped = false;
  return cluster;
}
function stopCluster(): void {
  cluster?.stopFast();
  stopped = true;
}
afterAll(() => {
  cluster?.stopSync();
});

async function answer(
  url: string,
  path: string,
): Promise<{ status: number; body: Record<string, unknown>; retryAfter: string | null }> {
  const response = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${adminToken}` } });
  return {
    status: response.status,
    body: (await response.json()) as Record<string, unknown>,
    retryAfter: response.headers.get("retry-after"),
  };
}

/** Polls until `path` answers (anything): the server listens. */
async function listening(url: string, path: string, proc: Proc): Promise<void> {
  const until = Date.now() + 30_000;
  for (;;) {
    if (proc.child.exitCode !== null) throw new Error(`the server exited: ${proc.output()}`);
    try {
      await fetch(`${url}${path}`);
      return;
    } catch {
      if (Date.now() > until) throw new Error(`${url} never listened: ${proc.output()}`);
      await sleep(50);
    }
  }
}

async function replicaOf(databaseUrl: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const proc = startCli(["server", "--port", String(port), "--home", tempDir()], {
    RUNYARD_DATABASE_URL: databaseUrl,
    RUNYARD_SECRET_KEY: secretKey,
    RUNYARD_ADMIN_TOKEN: adminToken,
    RUNYARD_LOG_LEVEL: "info",
    ...env,
  });
  started.push(proc);
  return { url: `http://127.0.0.1:${port}`, proc };
}

describe.skipIf(!adminUrl)("a replica started before its database", () => {
  it("listens at once, alive but not ready with the API answering 503, and serves once PostgreSQL is up", async () => {
    const cluster = await runningCluster();
    const databaseUrl = await cluster.createDatabase();
    stopCluster();
    const { url, proc } = await replicaOf(databaseUrl);
    await listening(url, "/health", proc);

    const health = await answer(url, "/health");
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ ok: true, database: "unreachable" });
    const ready = await answer(url, "/health/ready");
    expect(ready.status).toBe(503);
    expect(ready.body).toMatchObject({ ok: false, database: "unreachable" });
    const runs = await answer(url, "/api/runs");
    expect(runs.status).toBe(503);
    expect(runs.retryAfter).toMatch(/^\d+$/);
    expect(runs.body).toMatchObject({
      error: { code: "STORE_UNAVAILABLE", hint: expect.stringContaining("Retry-After") },
    });
    // A runner's socket is answered 503 too, so that it comes back after Retry-After.
    const upgrade = await new Promise<{ status: number; retryAfter: unknown }>((resolve, reject) => {
      const asked = request(`${url}/api/runners/connect`, {
        headers: { connection: "Upgrade", upgrade: "websocket" },
      });
      asked.on("response", (response) =>
        resolve({ status: response.statusCode ?? 0, retryAfter: response.headers["retry-after"] }),
      );
      asked.on("error", reject);
      asked.end();
    });
    expect(upgrade).toEqual({ status: 503, retryAfter: expect.stringMatching(/^\d+$/) });
    await proc.waitFor("waiting for the database", 10_000);

    await runningCluster();
    const readyBy = Date.now() + 30_000;
    while ((await answer(url, "/health/ready").catch(() => ({ status: 0 }))).status !== 200) {
      expect(proc.child.exitCode, proc.output()).toBeNull();
      expect(Date.now() < readyBy, `not ready 30 s after PostgreSQL started: ${proc.output()}`).toBe(true);
      await sleep(100);
    }
    expect((await answer(url, "/health")).body).toMatchObject({ ok: true, database: "ok" });
    expect((await answer(url, "/api/runs")).status).toBe(200);
    expect(proc.output()).toContain("listening on http");
  });

  it("exits with STORE_UNREACHABLE once RUNYARD_DATABASE_WAIT has passed", async () => {
    const cluster = await runningCluster();
    const databaseUrl = await cluster.createDatabase();
    stopCluster();
    const began = Date.now();
    const { url, proc } = await replicaOf(databaseUrl, { RUNYARD_DATABASE_WAIT: "2s" });
    await listening(url, "/health", proc);
    expect(await proc.exited).not.toBe(0);
    expect(Date.now() - began).toBeGreaterThanOrEqual(2000);
    expect(proc.output()).toMatch(/error: cannot reach the PostgreSQL database at 127\.0\.0\.1:\d+/);
    expect(proc.output()).toContain("hint: Check that PostgreSQL runs at that host and port");
  });
});

/** Migrates the database at `url` up to `migration` (included), as an older runyard left it. */
async function migratedTo(url: string, migration: string): Promise<void> {
  const opened = await openDatabase({ dialect: "postgres", url }, { readonly: false });
  try {
    const migrator = new Migrator({
      db: opened.db as Kysely<unknown>,
      provider: { getMigrations: async () => migrations },
      migrationTableName,
      migrationLockTableName,
    });
    const { error } = await migrator.migrateTo(migration);
    if (error !== undefined) throw error;
  } finally {
    await opened.close();
  }
}

describe.skipIf(!adminUrl)("a replica whose database goes away while it migrates", () => {
  it("waits for it, migrates once it is back, and serves", async () => {
    const cluster = await runningCluster();
    const databaseUrl = await cluster.createDatabase();
    // The database as the runyard before this one left it: the last migration is to run.
    const last = Object.keys(migrations).sort().at(-1) ?? "";
    await migratedTo(databaseUrl, migrationBefore(last));
    // A session of the operator's holds every table the migration reads or writes, so the
    // replica's migration waits there, inside its transaction, until PostgreSQL goes away.
    const holder = new pg.Client({ connectionString: databaseUrl });
    holder.on("error", () => {});
    await holder.connect();
    const tables = (
      await holder.query<{ name: string }>(
        "select tablename as name from pg_tables where schemaname = 'public' and tablename not like 'runyard_migration%'",
      )
    ).rows.map((row) => `"${row.name}"`);
    const holderPid = (await holder.query<{ pid: number }>("select pg_backend_pid() as pid")).rows[0]?.pid;
    await holder.query("begin");
    await holder.query(`lock table ${tables.join(", ")} in access exclusive mode`);

    const { url, proc } = await replicaOf(databaseUrl);
    // Its migration waits on the lock: a lock not granted, in a session other than the holder's.
    const watcher = new pg.Client({ connectionString: databaseUrl });
    watcher.on("error", () => {});
    await watcher.connect();
    const waitingBy = Date.now() + 30_000;
    while (
      (await watcher.query("select 1 from pg_locks where not granted and pid <> $1", [holderPid]))
        .rowCount === 0
    ) {
      expect(proc.child.exitCode, proc.output()).toBeNull();
      expect(Date.now() < waitingBy, `the migration never waited: ${proc.output()}`).toBe(true);
      await sleep(50);
    }
    await watcher.end();

    stopCluster();
    await Promise.race([
      proc.waitFor("waiting for the database", 30_000),
      proc.exited.then((code) => {
        throw new Error(`the replica exited (${code}) instead of waiting: ${proc.output().slice(-2000)}`);
      }),
    ]);
    expect(proc.child.exitCode, proc.output()).toBeNull();
    await runningCluster();
    const readyBy = Date.now() + 30_000;
    while ((await answer(url, "/health/ready").catch(() => ({ status: 0 }))).status !== 200) {
      expect(proc.child.exitCode, proc.output()).toBeNull();
      expect(Date.now() < readyBy, `not ready 30 s after PostgreSQL started: ${proc.output()}`).toBe(true);
      await sleep(100);
    }
    expect((await answer(url, "/health")).status).toBe(200);
    expect((await answer(url, "/api/runs")).status).toBe(200);
    // The migration that was cut ran again, whole, once.
    const check = new pg.Client({ connectionString: databaseUrl });
    await check.connect();
    const applied = await check.query(`select name from ${migrationTableName} where name = $1`, [last]);
    await check.end();
    expect(applied.rowCount).toBe(1);
  });
});

describe("a replica waiting for its database", () => {
  it("tells a caller with no token neither the database's address, user nor name", async () => {
    const dbPort = await freePort();
    const { url, proc } = await replicaOf(`postgres://h11user:h11pass@127.0.0.1:${dbPort}/h11db`, {
      RUNYARD_DATABASE_WAIT: "60",
    });
    await listening(url, "/health", proc);
    const response = await fetch(`${url}/api/runs`);
    const text = await response.text();
    expect(response.status).toBe(503);
    expect(text).toContain("STORE_UNAVAILABLE");
    for (const secret of [String(dbPort), "h11user", "h11db", "127.0.0.1"])
      expect(text).not.toContain(secret);
  }, 60_000);
});
