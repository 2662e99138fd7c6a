import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import BetterSqlite3 from "better-sqlite3";
import pg from "pg";
import { describe, expect, inject, it } from "vitest";
import { copiedTables } from "../src/store/copy.js";
import { migrations } from "../src/store/migrations/index.js";
import { runCli, tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  api,
  freePort,
  isFinal,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  submit,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");

/** Output, an exported var and a secret var: what a used home holds, some of it encrypted. */
function workflow(name: string): string {
  return `
version: v0.1
name: ${name}
secrets: [DB_PASSWORD]
inventory:
  hosts:
    local: {}
steps:
  - name: build
    targets: [local]
    action: shell.run
    args:
      export_vars: true
      script: |
        for i in 1 2 3; do echo "${name} line $i"; done
        echo "password is $DB_PASSWORD" >&2
        echo "BOPS_EXPORT:ARTIFACT=${name}.tar.gz"
  - name: check
    targets: [local]
    action: cmd.run
    args:
      cmd: test "$ARTIFACT" = "${name}.tar.gz"
`;
}

function sqliteRows(home: string, query: string): Record<string, unknown>[] {
  const db = new BetterSqlite3(join(home, "runyard.db"), { readonly: true });
  try {
    return db.prepare(query).all() as Record<string, unknown>[];
  } finally {
    db.close();
  }
}

async function postgresRows(url: string, query: string): Promise<Record<string, unknown>[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query(query)).rows;
  } finally {
    await client.end();
  }
}

async function counts(
  read: (query: string) => Promise<Record<string, unknown>[]> | Record<string, unknown>[],
) {
  const out: Record<string, number> = {};
  for (const table of copiedTables) {
    const rows = await read(`select count(*) as n from ${table}`);
    out[table] = Number(rows[0]?.n);
  }
  return out;
}

/** A home a real server and runner used: two finished runs with output, exports and a secret. */
interface UsedHome {
  home: string;
  runIds: string[];
  password: string;
  /** What the API said about each run, and its events, before the server stopped. */
  views: Array<{ run: unknown; events: unknown[] }>;
}

/**
 * The one used home of this file's tests, made at the first's start: each only reads it (a copy
 * from it, its status), so a server and runner start once, not once per test.
 */
let used: Promise<UsedHome> | undefined;
function usedHome(): Promise<UsedHome> {
  used ??= makeUsedHome();
  return used;
}

async function makeUsedHome(): Promise<UsedHome> {
  const home = tempDir();
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const server = await startTestServer(home);
  const runner = await startRunner(server.url, await runnerToken(server.url), { id: "copy-runner" });
  try {
    const runIds: string[] = [];
    for (const name of ["first", "second"]) {
      const runId = await submit(server.url, workflow(name), { DB_PASSWORD: password });
      expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
      runIds.push(runId);
    }
    const views = [];
    for (const runId of runIds) {
      views.push({
        run: await api(server.url, "GET", `/api/runs/${runId}`),
        events: await readEvents(server.url, runId),
      });
    }
    return { home, runIds, password, views };
  } finally {
    await runner.kill();
    await server.proc.kill();
  }
}

describe.skipIf(!adminUrl)("runyard db copy", () => {
  it("moves a used SQLite home into PostgreSQL, where a server with the home's key serves the same runs", async () => {
    const { home, runIds, password, views } = await usedHome();
    const url = await createTestDatabase(adminUrl);

    const result = await runCli(["db", "copy", "--from", home, "--to", url]);
    expect(result.stderr).not.toContain("error:");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^runs\s+2\s+2$/m);
    expect(result.stdout).toContain("verified: every table holds the same number of rows on both sides");
    expect(result.stdout).toContain(`export RUNYARD_SECRET_KEY="$(cat ${join(home, "secret.key")})"`);
    expect(result.stderr).toMatch(/copying run_events: \d+\/\d+ rows/);
    const key = readFileSync(join(home, "secret.key"), "utf8").trim();
    expect(result.stdout + result.stderr).not.toContain(key);

    const sqliteCounts = await counts((query) => sqliteRows(home, query));
    expect(await counts((query) => postgresRows(url, query))).toEqual(sqliteCounts);
    expect(sqliteCounts).toMatchObject({ runs: 2, tokens: 2, runners: 1 });
    expect(sqliteCounts.run_events).toBeGreaterThan(10);
    for (const runId of runIds) {
      const query = `select run_id, seq, type, ts, data from run_events where run_id = '${runId}' order by seq`;
      const copied = (await postgresRows(url, query)).map((row) => ({ ...row, seq: Number(row.seq) }));
      expect(copied).toEqual(sqliteRows(home, query));
    }
    const stored: unknown[] = [];
    for (const table of copiedTables) stored.push(await postgresRows(url, `select * from ${table}`));
    expect(JSON.stringify(stored)).toContain("enc1:");
    expect(JSON.stringify(stored)).not.toContain(password);

    const after = await startTestServer(tempDir(), { RUNYARD_DATABASE_URL: url, RUNYARD_SECRET_KEY: key });
    try {
      for (const [index, runId] of runIds.entries()) {
        const run = await api<{ vars: Record<string, string> }>(after.url, "GET", `/api/runs/${runId}`);
        expect(run).toEqual(views[index]?.run);
        expect(run.body.vars.ARTIFACT).toMatch(/\.tar\.gz$/);
        expect(await readEvents(after.url, runId)).toEqual(views[index]?.events);
      }
    } finally {
      await after.proc.kill();
    }
    // Two servers, a used home's runs and a copy: 34 s alone on a slow host, past 60 s loaded.
  }, 150_000);

  it("refuses a target that is not empty, naming the table, and writes nothing", async () => {
    const { home } = await usedHome();
    const url = await createTestDatabase(adminUrl);
    const first = await runCli(["db", "copy", "--from", home, "--to", url]);
    expect(first.code).toBe(0);
    const copied = await counts((query) => postgresRows(url, query));

    const again = await runCli(["db", "copy", "--from", home, "--to", url]);
    expect(again.code).toBe(2);
    expect(again.stderr).toMatch(
      /error: the target postgres:\/\/\S+ is not empty: table runs holds 2 rows; nothing was copied/,
    );
    expect(again.stderr).toContain("hint: Use an empty database; drop and recreate it with createdb");
    expect(again.stderr).not.toMatch(/^\s+at /m);
    expect(await counts((query) => postgresRows(url, query))).toEqual(copied);
  });

  it("refuses to copy a home while a server runs on it", async () => {
    const home = tempDir();
    const server = await startTestServer(home);
    try {
      const target = join(tempDir(), "copy.db");
      const result = await runCli(["db", "copy", "--from", home, "--to", target]);
      expect(result.code).toBe(2);
      expect(result.stderr).toContain(`error: the home folder ${home} is in use by another runyard process`);
      expect(existsSync(target)).toBe(false);
    } finally {
      await server.proc.kill();
    }
  });

  it("stops naming the host:port it cannot reach, with a hint, no password and no stack", async () => {
    const { home } = await usedHome();
    const port = await freePort();
    const result = await runCli([
      "db",
      "copy",
      "--from",
      home,
      "--to",
      `postgres://runyard:s3cret@127.0.0.1:${port}/runyard`,
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(`error: cannot reach the PostgreSQL database at 127.0.0.1:${port}`);
    expect(result.stderr).toContain("hint: Check that PostgreSQL runs");
    expect(result.stderr).not.toContain("s3cret");
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it("says what is wrong with a source that is not there or a URL that is not PostgreSQL", async () => {
    const missing = await runCli([
      "db",
      "copy",
      "--from",
      join(tempDir(), "nope"),
      "--to",
      join(tempDir(), "x.db"),
    ]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/error: \S+nope does not exist\nhint: /);
    const mysql = await runCli(["db", "copy", "--from", "mysql://root:hunter2@db/runyard", "--to", "x.db"]);
    expect(mysql.code).toBe(2);
    expect(mysql.stderr).toContain("error: mysql://root:***@db/runyard is not a PostgreSQL URL");
    expect(mysql.stderr).not.toContain("hunter2");
    expect(mysql.stderr).not.toMatch(/^\s+at /m);
  });
});

describe.skipIf(!adminUrl)("runyard db status", () => {
  it("shows the database the server would use, its password hidden, its schema, pending migrations and rows", async () => {
    const url = new URL(await createTestDatabase(adminUrl));
    url.password = "not-the-real-one";
    const fresh = await runCli(["db", "status", "--json"], { env: { RUNYARD_DATABASE_URL: url.toString() } });
    // Trust auth takes any password; what matters is that it never shows.
    expect(fresh.stdout).not.toContain("not-the-real-one");
    expect(JSON.parse(fresh.stdout)).toMatchObject({
      database: expect.stringContaining(":***@127.0.0.1:"),
      dialect: "postgres",
      state: "empty",
      version: null,
      pending: Object.keys(migrations).sort(),
    });

    const { home } = await usedHome();
    const status = await runCli(["db", "status", "--home", home], { env: { RUNYARD_DATABASE_URL: "" } });
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`database  ${join(home, "runyard.db")}`);
    expect(status.stdout).toMatch(/schema {4}\d{4}_\w+ \(up to date\)/);
    expect(status.stdout).toContain("pending   none");
    expect(status.stdout).toMatch(/^ {2}runs\s+2$/m);
    expect(status.stdout).not.toContain("runyard_migration");
  });
});
