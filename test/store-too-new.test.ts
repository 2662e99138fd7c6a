import { Kysely, Migrator, PostgresDialect, sql } from "kysely";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { WebSocket } from "ws";
import { runnerSocketPath } from "../src/core/protocol.js";
import { migrationLockTableName, migrations, migrationTableName } from "../src/store/migrations/index.js";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  createToken,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");

const workflow = `
version: v0.1
name: before-the-upgrade
inventory:
  hosts:
    local: {}
steps:
  - name: hello
    targets: [local]
    action: cmd.run
    args:
      cmd: echo written before the upgrade
`;

const connect = (url: string) =>
  new Kysely<unknown>({
    dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: url, max: 1 }) }),
  });

describe.skipIf(!adminUrl)("a replica whose database a newer runyard migrated while it ran", () => {
  let databaseUrl: string;
  let db: Kysely<unknown>;
  let server: TestServer;
  let runner: Proc;
  let runId: string;
  let token: string;
  let member: string;

  beforeAll(async () => {
    databaseUrl = await createTestDatabase(adminUrl);
    server = await startTestServer(tempDir(), { RUNYARD_DATABASE_URL: databaseUrl });
    token = await runnerToken(server.url);
    // At warn, to read what it says when the replica refuses it.
    runner = await startRunner(server.url, token, {
      id: "too-new-runner",
      env: { RUNYARD_LOG_LEVEL: "warn" },
    });
    member = await createToken(server.url, { kind: "user", tenant_id: "t-member", name: "member" });
    db = connect(databaseUrl);
  });

  afterAll(async () => {
    await runner?.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await db?.destroy();
  });

  it("ignores a fleet message of a type it does not know (a newer replica's), and goes on working", async () => {
    await sql`select pg_notify('runyard_fleet', ${JSON.stringify({ type: "from-a-newer-release", from: "newer" })})`.execute(
      db,
    );
    // Anyone who may connect can NOTIFY: JSON that is no message at all is ignored too.
    await sql`select pg_notify('runyard_fleet', 'null')`.execute(db);
    runId = await submit(server.url, workflow);
    expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
    expect(server.proc.child.exitCode).toBeNull();
  });

  it("answers writes 503 STORE_TOO_NEW with Retry-After and reads as before, not ready, its row gone", async () => {
    await sql`update runyard_migration_state set writers_from = 9999, writers_version = 'runyard 9.9.0'`.execute(
      db,
    );
    await server.proc.waitFor(/this replica stops writing/);

    const refused = await fetch(`${server.url}/api/runs`, {
      method: "POST",
      headers: { authorization: `Bearer ${adminToken}`, "content-type": "application/json" },
      body: JSON.stringify({ workflow }),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("30");
    const { error } = (await refused.json()) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe("STORE_TOO_NEW");
    expect(error.message).toContain("runyard 9.9.0 or later");
    expect(error.hint).toContain("still answers reads");

    // A read writes nothing, not even a token's last use.
    const lastUsed = async () =>
      (
        await sql<{
          last_used_at: string | null;
        }>`select last_used_at from tokens where name = 'member'`.execute(db)
      ).rows[0]?.last_used_at;
    expect(await lastUsed()).toBeNull();
    expect(
      (await fetch(`${server.url}/api/runs`, { headers: { authorization: `Bearer ${member}` } })).status,
    ).toBe(200);
    expect(await lastUsed()).toBeNull();

    const runs = await api<{ runs: Array<{ id: string; status: string }> }>(server.url, "GET", "/api/runs");
    expect(runs.status).toBe(200);
    expect(runs.body.runs).toEqual([expect.objectContaining({ id: runId, status: "success" })]);
    const log = await fetch(`${server.url}/api/runs/${runId}/log`, {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    expect(await log.text()).toContain("written before the upgrade");

    const ready = await fetch(`${server.url}/health/ready`);
    expect(ready.status).toBe(503);
    expect(((await ready.json()) as { waiting_for: string }).waiting_for).toContain(
      "an upgrade of this replica",
    );
    expect((await fetch(`${server.url}/health`)).status).toBe(200);

    // Its runs are the other replicas' to adopt at once, and no runner socket stays with it.
    const rows = await sql<{ id: string }>`select id from replicas`.execute(db);
    expect(rows.rows).toEqual([]);
    // A runner connecting now is refused the same way (its socket would write each event).
    const socket = new WebSocket(`${server.url.replace("http", "ws")}${runnerSocketPath}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      socket.on("unexpected-response", (_request, response) => {
        let body = "";
        response.on("data", (chunk) => {
          body += String(chunk);
        });
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.on("open", () => reject(new Error("the runner socket was opened")));
    });
    // Ended before it opened: ws reports that as an error, which is what was asked.
    socket.on("error", () => undefined);
    socket.terminate();
    expect(answer.status).toBe(503);
    expect(answer.body).toContain("STORE_TOO_NEW");
    // The runner it dropped says why it is refused, not that the database is away.
    await runner.waitFor("this server replica no longer writes its database");
    expect(server.proc.child.exitCode).toBeNull();
  });
});

describe.skipIf(!adminUrl)("runyard db migrate", () => {
  it("applies 0045 beside a 0.1.0 replica's row, and finishes it only when told to force", async () => {
    const url = await createTestDatabase(adminUrl);
    const db = connect(url);
    try {
      const migrator = new Migrator({
        db,
        provider: { getMigrations: async () => migrations },
        migrationTableName,
        migrationLockTableName,
      });
      expect((await migrator.migrateTo("0044_spend_hold_after_seq")).error).toBeUndefined();
      await sql`insert into replicas (id, hostname, url, version, started_at, seen_at)
        values ('old-replica', 'old-host', null, '0.1.0', '2026-11-29T00:00:00.000Z', '2026-11-29T00:00:00.000Z')`.execute(
        db,
      );
      const env = { RUNYARD_DATABASE_URL: url };

      const forceAlone = await runCli(["db", "migrate", "--force"], { env });
      expect(forceAlone.code).toBe(2);
      expect(forceAlone.stderr).toContain("--force goes with --finish");

      const migrated = await runCli(["db", "migrate"], { env });
      expect(migrated.code).toBe(0);
      expect(migrated.stdout).toContain("applied 0045_schema_levels");
      expect(migrated.stdout).toContain(
        "waiting to finish: 0045_schema_levels; replicas of an older runyard have rows: old-replica (runyard 0.1.0 on old-host)",
      );

      const status = await runCli(["db", "status"], { env });
      expect(status.stdout).toContain("writers   runyard 0.1.0 or later (schema level 44)");
      expect(status.stdout).toContain("replica   old-replica: runyard 0.1.0 (older than 0.2.0) on old-host");

      const held = await runCli(["db", "migrate", "--finish"], { env });
      expect(held.code).toBe(1);
      expect(held.stdout).toContain("waiting to finish: 0045_schema_levels");
      expect(held.stderr).toContain("Stop those replicas");

      const forced = await runCli(["db", "migrate", "--finish", "--force"], { env });
      expect(forced.code).toBe(0);
      expect(forced.stdout).toContain("finished 0045_schema_levels");
      const after = await runCli(["db", "status", "--json"], { env });
      expect(JSON.parse(after.stdout)).toMatchObject({
        writers_from: 45,
        writers_version: "runyard 0.2.0",
        unfinished: [],
      });
    } finally {
      await db.destroy();
    }
  });
});
