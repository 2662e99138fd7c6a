import { request } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, inject, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { type PostgresCluster, startPostgresCluster } from "./helpers/postgres-cluster.js";
import { adminToken, freePort, type Proc, startCli } from "./helpers/server.js";

/*
 * A replica started while its PostgreSQL is down waits for it: it answers at once (alive, not
 * ready, the API 503 with Retry-After), and serves once the database is up; past
 * RUNYARD_DATABASE_WAIT it exits with STORE_UNREACHABLE as before.
 */

const adminUrl = inject("postgresAdminUrl");
const secretKey = "database-wait-secret-key-0123456789abcdef";

const clusters: PostgresCluster[] = [];
const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
  for (const cluster of clusters.splice(0)) cluster.stopSync();
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
    const cluster = await startPostgresCluster();
    clusters.push(cluster);
    const databaseUrl = await cluster.createDatabase();
    cluster.stopFast();
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

    await cluster.startAgain();
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
    const cluster = await startPostgresCluster();
    clusters.push(cluster);
    const databaseUrl = await cluster.createDatabase();
    cluster.stopFast();
    const began = Date.now();
    const { url, proc } = await replicaOf(databaseUrl, { RUNYARD_DATABASE_WAIT: "2s" });
    await listening(url, "/health", proc);
    expect(await proc.exited).not.toBe(0);
    expect(Date.now() - began).toBeGreaterThanOrEqual(2000);
    expect(proc.output()).toMatch(/error: cannot reach the PostgreSQL database at 127\.0\.0\.1:\d+/);
    expect(proc.output()).toContain("hint: Check that PostgreSQL runs at that host and port");
  });
});
