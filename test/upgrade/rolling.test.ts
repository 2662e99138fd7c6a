import { createHash } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { migrations } from "../../src/store/migrations/index.js";
import { cliPath, runCli, tempDir, writeWorkflow } from "../helpers/cli.js";
import { createTestDatabase } from "../helpers/postgres.js";
import {
  type PreviousRelease,
  previousRelease,
  previousReleaseNewestMigration,
  previousReleaseVersion,
} from "../helpers/previous-release.js";
import {
  adminToken,
  api,
  freePort,
  type Proc,
  startCli,
  startedOrKilled,
  startRunner,
  submit,
  testTimings,
} from "../helpers/server.js";
import { type OpenApiDocument, sweepRoutes } from "./route-sweep.js";
import {
  answered,
  deliver,
  expectDataReadsBack,
  hookName,
  hookSecret,
  makeUpgradeData,
  nightly,
  runnerGroup,
  type StoredViews,
  secretSha256,
  storedViews,
  succeeded,
  type UpgradeData,
  workflowName,
} from "./upgrade-data.js";

/*
 * A rolling upgrade on PostgreSQL: the previous release runs as a replica with an operator's data;
 * today's replica starts beside it on the same database (and migrates it); while both run, every
 * route of either answers without a 5xx and what one writes the other reads; then the previous
 * replica stops, today's fleet leader finishes the migration, and the data reads as before. One
 * database, one previous build, one replica of each build and one runner (today's checkout's,
 * joined to both replicas, failing over to today's when the previous one stops) for the file.
 */

const adminUrl = inject("postgresAdminUrl");
const secretKey = "rolling-upgrade-secret-key-0123456789abcdef";
const runnerId = "rolling-runner";
/** The migration 0.2.0 adds, whose finish step a fleet leader runs once no older replica lives. */
const finishedMigration = "0045_schema_levels";

describe.skipIf(!adminUrl)(`a rolling upgrade from ${previousReleaseVersion} on PostgreSQL`, () => {
  const started: Proc[] = [];
  let release: PreviousRelease;
  let databaseUrl: string;
  let previous: { url: string; proc: Proc };
  let today: { url: string; proc: Proc };
  let runner: Proc;
  let data: UpgradeData;

  /** A replica of the build at `bin` on the database; resolves once it listens. */
  const startReplica = async (
    bin: string,
    port: number,
    env: Record<string, string> = {},
  ): Promise<{ url: string; proc: Proc }> => {
    const proc = startCli(
      ["server", "--port", String(port), "--home", tempDir()],
      {
        RUNYARD_ADMIN_TOKEN: adminToken,
        ...testTimings(),
        RUNYARD_DATABASE_URL: databaseUrl,
        RUNYARD_SECRET_KEY: secretKey,
        RUNYARD_REPLICA_HEARTBEAT_MS: "300",
        // Not about how soon a death is seen: a replica slowed by a busy machine stays alive.
        RUNYARD_REPLICA_LEASE_MS: "10000",
        ...env,
      },
      tempDir("runyard-work-"),
      bin,
    );
    started.push(proc);
    await startedOrKilled(proc, /listening on http:\/\/\S+/);
    return { url: `http://127.0.0.1:${port}`, proc };
  };

  beforeAll(async () => {
    release = await previousRelease();
    databaseUrl = await createTestDatabase(adminUrl);
    const todayPort = await freePort();
    previous = await startReplica(release.bin, await freePort());
    const todayUrl = `http://127.0.0.1:${todayPort}`;
    data = await makeUpgradeData(release.bin, previous.url, async (token) => {
      // Both replicas' URLs: it joins the previous one, and fails over to today's when it stops.
      runner = await startRunner(`${previous.url},${todayUrl}`, token, {
        id: runnerId,
        group: runnerGroup,
        capacity: 4,
      });
      started.push(runner);
    });
    today = await startReplica(cliPath, todayPort, { RUNYARD_LOG_LEVEL: "info" });
    // The first file to ask builds the previous release; it runs npm ci when the checkout's lock
    // no longer installs every package of the release's as it was (2 to 4 minutes here).
  }, 600_000);

  afterAll(async () => {
    await Promise.all(started.map((proc) => proc.kill("SIGKILL")));
  });

  it("reads the previous release's data through both replicas", async () => {
    await expectDataReadsBack(previous.url, data);
    await expectDataReadsBack(today.url, data);
  });

  it("answers no route of the previous release's OpenAPI document with a 5xx, on either replica", async () => {
    const document = answered(
      await api<OpenApiDocument>(previous.url, "GET", "/openapi.json"),
      200,
      "openapi",
    );
    const real = { runId: data.runId, hookId: data.hookId };
    const offenders = [
      ...(await sweepRoutes(previous.url, document, real, "previous")).map(
        (each) => `previous replica: ${each}`,
      ),
      ...(await sweepRoutes(today.url, document, real, "today")).map((each) => `today's replica: ${each}`),
    ];
    expect(offenders, offenders.join("\n")).toEqual([]);
  });

  it("makes a version saved through one replica live for its hook and schedule on the other", async () => {
    for (const [version, writer, reader] of [
      [3, previous, today],
      [4, today, previous],
    ] as const) {
      const saved = await runCli(
        ["workflow", "save", writeWorkflow(nightly(version)), "--name", workflowName],
        {
          bin: writer === previous ? release.bin : cliPath,
          env: { RUNYARD_SERVER_URL: writer.url, RUNYARD_TOKEN: adminToken },
        },
      );
      expect(saved.code, saved.stderr).toBe(0);
      const shown = answered(
        await api<{ live_version: number | null }>(reader.url, "GET", `/api/workflows/${workflowName}`),
        200,
        "the saved workflow",
      );
      expect(shown.live_version).toBe(version);
      const { schedules } = answered(
        await api<{ schedules: Array<{ workflow: string; workflow_version: number }> }>(
          reader.url,
          "GET",
          "/api/schedules",
        ),
        200,
        "the schedules",
      );
      expect(
        schedules.filter((each) => each.workflow === workflowName).map((each) => each.workflow_version),
      ).toEqual([version]);
      const log = await succeeded(
        reader.url,
        await deliver(reader.url, data.hookPath, `refs/heads/v${version}`),
      );
      expect(stdoutOf(log)).toContain(`version=${version}\nref=refs/heads/v${version}\n`);
    }
  });

  it("delivers a hook made through one replica through the other, both ways", async () => {
    for (const [name, maker, receiver] of [
      ["made-by-previous", previous, today],
      ["made-by-today", today, previous],
    ] as const) {
      const made = answered(
        await api<{ url: string }>(maker.url, "POST", "/api/hooks", {
          name,
          workflow: workflowName,
          secret: hookSecret,
          vars: { HOOK_REF: "$.ref" },
        }),
        201,
        `the hook ${name}`,
      );
      const log = await succeeded(
        receiver.url,
        await deliver(receiver.url, new URL(made.url, maker.url).pathname, name),
      );
      expect(log).toContain(`ref=${name}\n`);
      expect(log).toContain(`secret=${secretSha256}\n`);
    }
  });

  it("streams a run submitted to one replica to its end over SSE on the other, both ways", async () => {
    for (const [submitter, follower] of [
      [previous, today],
      [today, previous],
    ] as const) {
      const runId = await submit(submitter.url, gatedWorkflow);
      // The run waits at its approval until the follower's stream shows it waiting: the answer,
      // given to the submitter's replica, and the run's end then reach the stream live.
      const events = await followRun(follower.url, runId, async (event) => {
        if (event.type !== "step.waiting") return;
        answered(
          await api(submitter.url, "POST", `/api/runs/${runId}/steps/go-live/approve`, {}),
          200,
          "the approval",
        );
      });
      const types = events.map((event) => event.type);
      expect(types).toContain("step.waiting");
      const last = events.at(-1);
      expect(last).toMatchObject({ type: "run.finished", status: "success" });
      expect(
        events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join(""),
      ).toContain("shipped\n");
    }
  });

  it("uses a secret set on one replica in a run submitted to the other, both ways", async () => {
    for (const [setter, submitter, name] of [
      [previous, today, "SET_ON_PREVIOUS"],
      [today, previous, "SET_ON_TODAY"],
    ] as const) {
      const value = `${name} value ${Math.random()}`;
      const set = await api(setter.url, "PUT", `/api/secrets/${name}`, { value });
      expect(set.status, JSON.stringify(set.body)).toBeLessThan(300);
      const log = await succeeded(submitter.url, await submit(submitter.url, secretWorkflow(name)));
      expect(log).toContain(`hash=${createHash("sha256").update(value).digest("hex")}\n`);
    }
  });

  it("finishes the migration once the previous replica stops, and reads everything as before", async () => {
    const before: StoredViews = await storedViews(today.url);
    const schemaChanged = previousReleaseNewestMigration !== Object.keys(migrations).sort().at(-1);
    const during = await migrationState(databaseUrl, finishedMigration);
    expect(during.finished, "the finish step ran while a 0.1.0 replica was alive").toBe(false);
    if (schemaChanged) {
      // Today's migrations include 0045, whose finish waits: while the 0.1.0 replica lives, the
      // column stays nullable.
      expect(during.nullable).toBe("YES");
    }
    // 143: it stopped on the signal, as a server does.
    expect(await previous.proc.kill("SIGTERM")).toBe(143);
    if (schemaChanged) {
      // The leader says so (at info, which today's replica logs here), once the finish committed.
      await today.proc.waitFor("the migrations' finishing steps ran");
      expect(await migrationState(databaseUrl, finishedMigration)).toEqual({
        finished: true,
        nullable: "NO",
      });
    }
    await expectDataReadsBack(today.url, { ...data, views: before });
    // The runner left the stopped replica for today's, and runs there what its hook starts.
    await runner.waitFor(`runner ${runnerId} connected to ${today.url}`);
    const log = await succeeded(today.url, await deliver(today.url, data.hookPath, "refs/heads/finished"));
    expect(stdoutOf(log)).toContain(`ref=refs/heads/finished\nbytes=`);
    expect(answered(await api(today.url, "GET", `/api/hooks/${hookName}`), 200, "the hook")).toEqual(
      before.hook,
    );
  });
});

/**
 * A run's log without the workflow's stderr line: its stdout lines keep their order, but the
 * stderr line may fall anywhere among them (two pipes).
 */
function stdoutOf(log: string): string {
  return log
    .split("\n")
    .filter((line) => line !== "to stderr")
    .join("\n");
}

/** A build step on the runner, an approval, and a step after it. */
const gatedWorkflow = `version: v0.1
name: rolling-gated
inventory:
  hosts:
    box: {group: ${runnerGroup}}
steps:
  - name: build
    targets: [box]
    action: cmd.run
    args:
      cmd: echo built
  - name: go-live
    action: approval
    args:
      message: Ship it?
      approvers: [role:admin]
      timeout_seconds: 600
  - name: deploy
    targets: [box]
    action: cmd.run
    args:
      cmd: echo shipped
`;

/** A run that prints the hash of the secret `name` (its value is masked in output). */
const secretWorkflow = (name: string) => `version: v0.1
name: rolling-secret
secrets: [${name}]
inventory:
  hosts:
    box: {group: ${runnerGroup}}
steps:
  - name: hash
    targets: [box]
    action: shell.run
    args:
      script: printf 'hash=%s\\n' "$(printf '%s' "$${name}" | sha256sum | cut -d' ' -f1)"
`;

/**
 * Follows a run's SSE stream on `url` from its start until the stream ends (after run.finished),
 * calling `onEvent` with each event as it comes; fails if it has not ended within 90 s.
 */
async function followRun(
  url: string,
  runId: string,
  onEvent: (event: RunEvent) => Promise<void>,
): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  const response = await fetch(new URL(`/api/runs/${runId}/events?access_token=${adminToken}`, url), {
    signal: AbortSignal.timeout(90_000),
  });
  if (response.status !== 200 || !response.body)
    throw new Error(`the stream of ${runId} answered ${response.status}`);
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of response.body) {
    buffer += decoder.decode(chunk as Uint8Array, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const data = buffer
        .slice(0, end)
        .split("\n")
        .find((line) => line.startsWith("data: "));
      buffer = buffer.slice(end + 2);
      if (!data) continue;
      const event = JSON.parse(data.slice(6)) as RunEvent;
      events.push(event);
      await onEvent(event);
    }
  }
  return events;
}

/**
 * Whether `runyard_migration_finished` has a row naming `migration` (false while the table is not
 * there), and whether `replicas.schema_level` may be null ("YES", "NO"; undefined without it).
 */
async function migrationState(
  url: string,
  migration: string,
): Promise<{ finished: boolean; nullable: string | undefined }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows: columns } = await client.query<{ is_nullable: string }>(
      "select is_nullable from information_schema.columns where table_name = 'replicas' and column_name = 'schema_level'",
    );
    const table = await client.query("select to_regclass('runyard_migration_finished') as name");
    const finished =
      table.rows[0]?.name !== null &&
      (await client.query("select * from runyard_migration_finished")).rows.some(
        (row: Record<string, unknown>) => Object.values(row).includes(migration),
      );
    return { finished, nullable: columns[0]?.is_nullable };
  } finally {
    await client.end();
  }
}
