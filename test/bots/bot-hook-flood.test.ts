import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunningServer } from "../../src/server/server.js";
import { tempDir } from "../helpers/cli.js";
import { injectJson, makeToken, startInProcessServer } from "../helpers/in-process.js";
import { createTestDatabase } from "../helpers/postgres.js";

/**
 * A bot's webhook flooded through the real route of a real server, as anyone holding its URL can:
 * one server on SQLite, and two replicas on one PostgreSQL database. No runner ever starts the
 * bots (one with Docker is known, never connected), so a request the limit takes is answered 503
 * (not running) and one it refuses 429: what the limit did shows in the status alone. The window
 * is a minute, so a flood on a slow machine still lands in one window.
 */

const rate = { burst: 20, windowSecs: 60 };
const adminUrl = inject("postgresAdminUrl");
const backends = [
  { name: "sqlite", replicas: 1 },
  ...(adminUrl ? [{ name: "postgres", replicas: 2 }] : []),
] as const;

describe.each(backends)("a bot's webhook flooded on $name", (backend) => {
  let servers: RunningServer[] = [];
  let databaseUrl: string | undefined;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    databaseUrl = backend.name === "postgres" ? await createTestDatabase(adminUrl) : undefined;
    for (let i = 0; i < backend.replicas; i++) {
      servers.push(
        await startInProcessServer({
          home: tempDir(),
          botHookRate: rate,
          ...(databaseUrl ? { databaseUrl, secretKey: "bot-hook-flood-secret-key-0123456789abc" } : {}),
        }),
      );
    }
    const [first] = servers as [RunningServer];
    for (const [who, tenant] of [
      ["alice", "acme"],
      ["bob", "acme"],
      ["mallory", "globex"],
    ] as const) {
      tokens[who] = await makeToken(first, "user", { tenant_id: tenant });
      await first.store.runners.upsert({
        id: `runner-${tenant}`,
        group: "linux",
        labels: ["docker"],
        mode: "all",
        capacity: 1,
        hostname: `host-${tenant}`,
        tenant_id: tenant,
      });
    }
  });

  afterAll(async () => {
    await Promise.all(servers.map((server) => server.close()));
    servers = [];
  });

  /** A bot of `who` queued with a webhook; answers its hook's path. */
  async function hookedBot(who: string, name: string): Promise<string> {
    const app = servers[0]!.app;
    const token = tokens[who];
    const started = await injectJson(app, "POST", "/api/bots", {
      token,
      body: { name, image: "busybox:1.36", webhook_port: 8080 },
    });
    expect(started.status, JSON.stringify(started.body)).toBe(202);
    const hook = await injectJson(app, "GET", `/api/bots/${name}/webhook`, { token });
    expect(hook.status).toBe(200);
    return hook.body.path as string;
  }

  /** `count` requests at once to `path`, spread over the replicas; their statuses and Retry-Afters. */
  function flood(path: string, count: number) {
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const answer = await fetch(new URL(path, servers[i % servers.length]!.url), {
          method: "POST",
          body: "{}",
          headers: { "content-type": "application/json" },
        });
        const body = (await answer.json()) as { error?: { code: string } };
        return {
          status: answer.status,
          retryAfter: answer.headers.get("retry-after"),
          code: body.error?.code,
        };
      }),
    );
  }

  const statuses = (answers: { status: number }[]) => {
    const counts: Record<number, number> = {};
    for (const { status } of answers) counts[status] = (counts[status] ?? 0) + 1;
    return counts;
  };

  // Guards: the burst is exact under a flood over replicas (not more, and refused requests never
  // shut out ones with room); each refusal is a 429 a client can act on; the limit is per bot.
  it("takes exactly the burst of 300 at once, answers the rest 429 with a Retry-After within the window, and other bots take their own burst meanwhile", async () => {
    const [flooded, neighbour, stranger] = await Promise.all([
      hookedBot("alice", "flooded"),
      hookedBot("bob", "neighbour"),
      hookedBot("mallory", "stranger"),
    ]);
    const [many, ofNeighbour, ofStranger] = await Promise.all([
      flood(flooded, 300),
      flood(neighbour, 25),
      flood(stranger, 25),
    ]);
    expect(statuses(many)).toEqual({ 503: 20, 429: 280 });
    for (const refused of many.filter((answer) => answer.status === 429)) {
      expect(refused.code).toBe("RATE_LIMITED");
      expect(Number(refused.retryAfter)).toBeGreaterThanOrEqual(1);
      expect(Number(refused.retryAfter)).toBeLessThanOrEqual(rate.windowSecs);
    }
    expect(statuses(ofNeighbour)).toEqual({ 503: 20, 429: 5 });
    expect(statuses(ofStranger)).toEqual({ 503: 20, 429: 5 });
  });

  // Guards: removing a flooded bot answers its old address 404 from then on (nothing counted or
  // forwarded for it, no 500 in the race), and the bot started again under its name has its own
  // address and its own count.
  it("answers a bot removed mid-flood 404 at its old address, and the bot started again takes its own burst", async () => {
    const old = await hookedBot("alice", "reborn");
    const during = flood(old, 150);
    const removed = await injectJson(servers[0]!.app, "DELETE", "/api/bots/reborn", { token: tokens.alice });
    expect(removed.status).toBe(200);
    const answers = await during;
    expect(answers.every((answer) => [503, 429, 404].includes(answer.status))).toBe(true);
    expect(answers.filter((answer) => answer.status === 503).length).toBeLessThanOrEqual(rate.burst);
    expect(statuses(await flood(old, 10))).toEqual({ 404: 10 });
    const again = await hookedBot("alice", "reborn");
    expect(again).not.toBe(old);
    expect(statuses(await flood(again, 30))).toEqual({ 503: 20, 429: 10 });
  });

  // Guards: on PostgreSQL a request waiting for its bot's lock holds a pool connection; a flood of
  // one bot must not hold the pool while other tenants' requests wait for a connection (another
  // tenant's GET took a median 0.4 to 1.3 s during 400 at once when every request waited in the
  // database, 4 to 17 ms when each replica sends one at a time).
  // (Only where there is a pool to starve: on SQLite no test is defined, so none is skipped.)
  if (backend.name === "postgres")
    it("keeps at most one request of the flooded bot per replica in its lock, and another tenant's GET is answered meanwhile", async () => {
      const path = await hookedBot("alice", "pooled");
      const watcher = new pg.Client({ connectionString: databaseUrl });
      await watcher.connect();
      try {
        let waiting = 0;
        let done = false;
        const watch = (async () => {
          while (!done) {
            const { rows } = await watcher.query<{ n: string }>(
              "select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and wait_event = 'advisory'",
            );
            waiting = Math.max(waiting, Number(rows[0]!.n));
          }
        })();
        const answers = flood(path, 400);
        const gets = [];
        for (let i = 0; i < 10; i++) {
          const got = await fetch(new URL("/api/bots", servers[1]!.url), {
            headers: { authorization: `Bearer ${tokens.mallory}` },
          });
          gets.push(got.status);
          await got.text();
        }
        expect(statuses(await answers)).toEqual({ 503: 20, 429: 380 });
        done = true;
        await watch;
        expect(gets).toEqual(Array(10).fill(200));
        // One request a replica at a time: the one on the other replica may wait for it. The
        // bound is one more, as pg_stat_activity reads the backends one after the other, not at
        // one instant (a replica's next request, on another connection, may be read waiting
        // after its last was; a loaded run saw 2): every request waiting in the database showed 20.
        expect(waiting).toBeLessThanOrEqual(backend.replicas);
      } finally {
        await watcher.end();
      }
    });
});
