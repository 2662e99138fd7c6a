import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { runCli, tempDir, writeWorkflow } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import {
  adminToken,
  api,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
} from "./helpers/server.js";

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

/**
 * Per-second crons keep these tests short: the server's floor (a minute by default) is lowered,
 * and the cap on a tenant's scheduled runs an hour raised to match.
 */
async function server(home = tempDir(), env: Record<string, string> = {}): Promise<TestServer> {
  const s = await startTestServer(home, {
    RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS: "1",
    RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "100000",
    ...env,
  });
  started.push(s.proc);
  return s;
}

interface ScheduleView {
  id: string;
  workflow: string;
  next_tick_at: string | null;
  last_tick_at: string | null;
  last_tick: { outcome: string; run_id: string | null; detail: string | null; ticks: number } | null;
}
interface RunView {
  run_id: string;
  status: string;
  trigger: string;
  trigger_ref: string | null;
  saved_workflow: string | null;
  saved_version: number | null;
}

const scheduled = (schedule: string, script = "echo tick") => `name: scheduled
schedule: ${schedule}
steps:
  - name: tick
    action: cmd.run
    args:
      cmd: ${script}
`;

/** `runyard_schedule_ticks_total{outcome}` as /metrics shows it (labelled with the replica too). */
function tickCount(metrics: string, outcome: string): number {
  return Number(
    new RegExp(`runyard_schedule_ticks_total\\{[^}]*outcome="${outcome}"[^}]*\\} (\\d+)`).exec(metrics)?.[1],
  );
}

async function schedules(url: string): Promise<ScheduleView[]> {
  return (await api<{ schedules: ScheduleView[] }>(url, "GET", "/api/schedules")).body.schedules;
}

async function runsOf(url: string, workflow: string): Promise<RunView[]> {
  const { body } = await api<{ runs: RunView[] }>(url, "GET", "/api/runs?limit=500");
  return body.runs.filter((run) => run.saved_workflow === workflow);
}

async function save(url: string, name: string, workflow: string): Promise<void> {
  const { status, body } = await api(url, "POST", "/api/workflows", { name, workflow });
  if (status !== 201) throw new Error(`save failed: ${status} ${JSON.stringify(body)}`);
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A user token of its own tenant, so tests sharing a server see only their own. */
async function tenantToken(url: string, tenant: string): Promise<string> {
  return (
    await api<{ token: string }>(url, "POST", "/api/tokens", {
      kind: "user",
      name: tenant,
      tenant_id: tenant,
    })
  ).body.token;
}

/**
 * The servers tests share, each test in a tenant of its own: one at the default floor (the cap
 * on a tenant's scheduled runs an hour at 100), one at the one-second floor with a runner.
 */
let atDefaults: TestServer;
let perSecond: TestServer;
beforeAll(async () => {
  [atDefaults, perSecond] = await Promise.all([
    startTestServer(tempDir(), { RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "100" }),
    startTestServer(tempDir(), {
      RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS: "1",
      RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "100000",
    }),
  ]);
});
afterAll(async () => {
  await Promise.all([atDefaults, perSecond].map((s) => s?.proc.kill("SIGKILL")));
});

describe("schedules on one server (SQLite)", () => {
  it("refuses, at the default floor, a schedule that fires more than once a minute, saving nothing", async () => {
    const s = atDefaults;
    const token = await tenantToken(s.url, "floor");
    for (const cron of ["* * * * * *", "0,30 * * * * *", "0,10 0 * * * *"]) {
      const refused = await api<{ error: { code: string; message: string; hint: string } }>(
        s.url,
        "POST",
        "/api/workflows",
        { name: "too-often", workflow: scheduled(`{cron: "${cron}"}`, "echo hi") },
        token,
      );
      expect(refused.status, cron).toBe(400);
      expect(refused.body.error.message).toContain(
        "this server allows a schedule to fire at most once in 60 s",
      );
      expect(refused.body.error.hint).toContain("RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS");
    }
    const listed = await api<{ workflows: unknown[] }>(s.url, "GET", "/api/workflows", undefined, token);
    expect(listed.body.workflows).toEqual([]);
    expect(
      (
        await api(
          s.url,
          "POST",
          "/api/workflows",
          { name: "hourly", workflow: scheduled('{cron: "0 * * * *"}', "echo hi") },
          token,
        )
      ).status,
    ).toBe(201);
  });

  it("judges a workflow's entries together: refuses identical ones at their line and column, and entries that together fire more than once a minute", async () => {
    const s = atDefaults;
    const token = await tenantToken(s.url, "together");
    const twice = await api<{ error: { code: string; message: string; hint: string } }>(
      s.url,
      "POST",
      "/api/workflows",
      {
        name: "twice",
        file: "twice.yaml",
        workflow: scheduled(
          '\n  - {cron: "*/5 * * * *"}\n  - {cron: "0 3 * * *"}\n  - {cron: "*/5  * * * *"}',
        ),
      },
      token,
    );
    expect(twice.status).toBe(400);
    expect(twice.body.error.code).toBe("WORKFLOW_INVALID");
    expect(twice.body.error.message).toContain(
      'twice.yaml:5:5: schedule[2] repeats schedule[0] (cron "*/5  * * * *" in UTC): the two would start two runs at every tick',
    );
    // Each entry fires once a minute; together they fire every 30 seconds.
    const together = await api<{ error: { code: string; message: string; hint: string } }>(
      s.url,
      "POST",
      "/api/workflows",
      {
        name: "together",
        file: "together.yaml",
        workflow: scheduled('\n  - {cron: "0 * * * * *"}\n  - {cron: "30 * * * * *"}'),
      },
      token,
    );
    expect(together.status).toBe(400);
    expect(together.body.error.message).toBe(
      'together.yaml: schedules "0 * * * * *" and "30 * * * * *" together fire 30 s apart; this server allows a workflow\'s schedules to fire at most once in 60 s together',
    );
    expect(together.body.error.hint).toContain("the entries of one workflow count together");
    expect(
      (await api<{ workflows: unknown[] }>(s.url, "GET", "/api/workflows", undefined, token)).body.workflows,
    ).toEqual([]);
  });

  it("refuses at save a schedule that could take its tenant past the scheduled runs an hour the server allows", async () => {
    const s = atDefaults;
    const acme = await tenantToken(s.url, "acme");
    const globex = await tenantToken(s.url, "globex");
    const saveAs = (token: string, name: string, cron: string) =>
      api<{ error: { code: string; message: string; hint: string } }>(
        s.url,
        "POST",
        "/api/workflows",
        { name, file: `${name}.yaml`, workflow: scheduled(`{cron: "${cron}"}`) },
        token,
      );
    expect((await saveAs(acme, "every-minute", "* * * * *")).status).toBe(201);
    expect((await saveAs(acme, "every-two", "*/2 * * * *")).status).toBe(201);
    const over = await saveAs(acme, "every-five", "*/5 * * * *");
    expect(over.status).toBe(400);
    expect(over.body.error.message).toBe(
      "every-five.yaml: the schedules of tenant acme could start 102 runs in an hour (this workflow's 12, the others' 90); this server allows 100 scheduled runs an hour per tenant",
    );
    expect(over.body.error.hint).toContain("RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR");
    // Another tenant has a cap of its own; a new version of a workflow counts instead of its old one.
    expect((await saveAs(globex, "every-five", "*/5 * * * *")).status).toBe(201);
    expect((await saveAs(acme, "every-minute", "*/6 * * * *")).status).toBe(201);
    expect((await saveAs(acme, "every-five", "*/5 * * * *")).status).toBe(201);
  });

  it("fires a saved workflow's ticks as runs with trigger schedule, skips a tick while its run still runs, and stops when removed", async () => {
    const s = perSecond;
    started.push(await startRunner(s.url, await runnerToken(s.url), { id: "sched-1" }));
    await save(s.url, "every-second", scheduled('{cron: "* * * * * *", overlap: skip}', "sleep 1.6"));
    const deadline = Date.now() + 20_000;
    let skipped: ScheduleView | undefined;
    while (Date.now() < deadline && !skipped) {
      skipped = (await schedules(s.url)).find(
        (x) => x.workflow === "every-second" && x.last_tick?.outcome === "skipped",
      );
      if (!skipped) await pause(100);
    }
    expect(skipped?.last_tick?.detail).toMatch(
      /run run_\S+ of this schedule is still going \(overlap: skip\)/,
    );
    const runs = await runsOf(s.url, "every-second");
    expect(runs.length).toBeGreaterThan(0);
    for (const run of runs)
      expect(run).toMatchObject({ trigger: "schedule", trigger_ref: skipped?.id, saved_version: 1 });
    // Never two of its runs at once: overlap skip.
    expect(
      runs.filter((run) => run.status === "queued" || run.status === "running").length,
    ).toBeLessThanOrEqual(1);

    const listed = await runCli(["schedule", "list", "--server", s.url, "--token", adminToken]);
    expect(listed.stdout).toMatch(/every-second\s+\* \* \* \* \* \*\s+UTC/);
    const metrics = await fetch(new URL("/metrics", s.url), {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const text = await metrics.text();
    expect(tickCount(text, "fired")).toBeGreaterThan(0);
    expect(tickCount(text, "skipped")).toBeGreaterThan(0);

    const removed = await runCli([
      "workflow",
      "rm",
      "every-second",
      "--server",
      s.url,
      "--token",
      adminToken,
    ]);
    expect(removed.code).toBe(0);
    expect((await schedules(s.url)).filter((x) => x.workflow === "every-second")).toEqual([]);
    const after = (await runsOf(s.url, "every-second")).length;
    // Two ticks of a schedule saved after the removal: the scheduler's passes since fired nothing
    // for the removed workflow.
    await save(s.url, "stop-witness", scheduled('{cron: "* * * * * *", overlap: queue}'));
    while ((await runsOf(s.url, "stop-witness")).length < 2) await pause(100);
    expect((await runsOf(s.url, "every-second")).length).toBe(after);
  }, 60_000);

  it("keeps a tenant admin's schedule on her version when a member saves another, then runs the promoted one as hers, written by the member", async () => {
    const s = perSecond;
    const token = async (kind: string, name: string) =>
      (
        await api<{ id: string; token: string }>(s.url, "POST", "/api/tokens", {
          kind,
          name,
          tenant_id: "acme",
        })
      ).body;
    const admin = await token("admin", "acme admin");
    const member = await token("user", "acme member");
    const saveAs = async (who: string, cmd: string) =>
      api<{ version: number; promoted: boolean }>(
        s.url,
        "POST",
        "/api/workflows",
        { name: "ticking", workflow: scheduled('{cron: "* * * * * *", overlap: queue}', cmd) },
        who,
      );
    expect((await saveAs(admin.token, "echo one")).body.promoted).toBe(true);
    expect((await saveAs(member.token, "echo two")).body).toMatchObject({ version: 2, promoted: false });
    interface Scheduled extends RunView {
      created_by: string;
      authored_by: string;
    }
    const scheduledRuns = async () =>
      (
        await api<{ runs: Scheduled[] }>(s.url, "GET", "/api/runs?limit=500", undefined, admin.token)
      ).body.runs.filter((run) => run.trigger === "schedule");
    while ((await scheduledRuns()).length < 2) await pause(100);
    for (const run of await scheduledRuns())
      expect(run).toMatchObject({ saved_version: 1, created_by: admin.id, authored_by: admin.id });
    const promoted = await api(s.url, "POST", "/api/workflows/ticking/promote", { version: 2 }, admin.token);
    expect(promoted.status, JSON.stringify(promoted.body)).toBe(200);
    let latest: Scheduled[] = [];
    while (latest.length === 0) {
      latest = (await scheduledRuns()).filter((run) => run.saved_version === 2);
      if (latest.length === 0) await pause(100);
    }
    expect(latest[0]).toMatchObject({ created_by: admin.id, authored_by: member.id });
  }, 60_000);

  it("skips the ticks past a tenant's scheduled runs an hour, for schedules saved under a higher cap", async () => {
    const home = tempDir();
    let s = await server(home);
    await save(s.url, "busy", scheduled('{cron: "* * * * * *", overlap: queue}'));
    while ((await runsOf(s.url, "busy")).length < 1) await pause(100);
    await s.proc.kill("SIGTERM");
    s = await server(home, { RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "2" });
    const capped = async () => {
      const [busy] = await schedules(s.url);
      return busy?.last_tick?.outcome === "skipped" &&
        busy.last_tick.detail?.includes("RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR=2")
        ? busy
        : undefined;
    };
    let first = await capped();
    while (!first) {
      await pause(100);
      first = await capped();
    }
    expect(first.last_tick?.detail).toMatch(
      /^the schedules outside any tenant started \d+ runs in the hour before this tick/,
    );
    const runs = (await runsOf(s.url, "busy")).length;
    expect(runs).toBeGreaterThanOrEqual(2);
    // The next tick is skipped too: no run more.
    let later = await capped();
    while (!later || later.last_tick_at === first.last_tick_at) {
      await pause(100);
      later = await capped();
    }
    expect((await runsOf(s.url, "busy")).length).toBe(runs);
  }, 60_000);

  it("runs a file with schedule: once under `runyard run`, saying schedules apply to saved workflows", async () => {
    const result = await runCli(["run", writeWorkflow(scheduled('{cron: "*/5 * * * *"}'))], {
      env: { RUNYARD_HOME: tempDir() },
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain("schedule: applies to saved workflows only");
    expect(result.stdout).toContain("tick");
  });

  it("follows catch_up for ticks missed while the server was down: latest fires one, all fires each, none records them missed", async () => {
    // A tick not fired within a second of its time is missed (RUNYARD_SCHEDULE_ON_TIME_MS).
    const onTimeMs = 1000;
    const home = tempDir();
    const starting = performance.now();
    let s = await server(home, { RUNYARD_SCHEDULE_ON_TIME_MS: String(onTimeMs) });
    const startMs = performance.now() - starting;
    const now = new Date();
    // Ten seconds ahead: three saves and a graceful stop fit in it on a loaded machine (four did
    // not), or four of this server's start-ups where that is more (a machine busier still), up to
    // 40 s, short of the cron's other combinations (below).
    const leadMs = Math.min(40_000, Math.max(10_000, 4 * startMs));
    const first = new Date(Math.ceil((now.getTime() + leadMs) / 1000) * 1000);
    const ticks = [0, 1, 2].map((n) => new Date(first.getTime() + n * 1000));
    // Three ticks a few seconds ahead, whatever minute, hour or day they fall in: each cron field
    // lists the values its ticks have, and the fields' other combinations lie 58 s or more away
    // from them (before the save, or after the test).
    const field = (of: (t: Date) => number) => [...new Set(ticks.map(of))].join(",");
    const cron = [
      field((t) => t.getUTCSeconds()),
      field((t) => t.getUTCMinutes()),
      field((t) => t.getUTCHours()),
      field((t) => t.getUTCDate()),
      field((t) => t.getUTCMonth() + 1),
      "*",
    ].join(" ");
    for (const mode of ["none", "latest", "all"]) {
      await save(s.url, `catch-${mode}`, scheduled(`{cron: "${cron}", overlap: queue, catch_up: ${mode}}`));
    }
    await s.proc.kill("SIGTERM");
    expect(Date.now(), "the server must stop before the first tick").toBeLessThan(first.getTime());
    const lastTick = ticks[2] as Date;
    // Past catch_up: none's window for the last tick too, however fast the server starts again.
    await pause(lastTick.getTime() + onTimeMs + 500 - Date.now());
    s = await server(home, { RUNYARD_SCHEDULE_ON_TIME_MS: String(onTimeMs) });
    const deadline = Date.now() + 30_000;
    let listed = await schedules(s.url);
    while (Date.now() < deadline && !listed.every((x) => x.last_tick_at === lastTick.toISOString())) {
      await pause(100);
      listed = await schedules(s.url);
    }
    const byName = new Map(listed.map((x) => [x.workflow, x]));
    expect((await runsOf(s.url, "catch-all")).length).toBe(3);
    expect((await runsOf(s.url, "catch-latest")).length).toBe(1);
    expect((await runsOf(s.url, "catch-none")).length).toBe(0);
    expect(byName.get("catch-none")?.last_tick).toMatchObject({ outcome: "missed", ticks: 1 });
    expect(byName.get("catch-latest")?.last_tick).toMatchObject({ outcome: "started" });
    expect(byName.get("catch-all")?.last_tick).toMatchObject({ outcome: "started" });
    const listedCli = await runCli(["schedule", "list", "--server", s.url, "--token", adminToken]);
    expect(listedCli.stdout).toMatch(/catch-none .*missed/);
    const metrics = await (
      await fetch(new URL("/metrics", s.url), { headers: { authorization: `Bearer ${adminToken}` } })
    ).text();
    // none: 3 missed; latest: 2 missed, 1 fired; all: 3 fired.
    expect(tickCount(metrics, "missed")).toBe(5);
    expect(tickCount(metrics, "fired")).toBe(4);
  }, 120_000);
});

describe("schedules on PostgreSQL with two replicas", () => {
  const adminUrl = inject("postgresAdminUrl");
  const secretKey = "schedule-test-secret-key-0123456789abcdef";
  const timings = { RUNYARD_REPLICA_HEARTBEAT_MS: "300", RUNYARD_REPLICA_LEASE_MS: "2000" };

  it("fires each tick exactly once when the leader is killed -9 around a tick", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const env = { RUNYARD_DATABASE_URL: databaseUrl, RUNYARD_SECRET_KEY: secretKey, ...timings };
    // Both start at once; A is whichever leads, B the other.
    const both = await Promise.all([server(tempDir(), env), server(tempDir(), env)]);
    const leads = async (s: TestServer) =>
      (await api<{ leader: boolean }>(s.url, "GET", "/health")).body.leader;
    let leading: boolean[] = [];
    while (leading.filter(Boolean).length !== 1) {
      if (leading.length > 0) await pause(100);
      leading = await Promise.all(both.map(leads));
    }
    const [a, b] = (leading[0] ? both : [...both].reverse()) as [TestServer, TestServer];
    // No runner: every run stays queued, and overlap queue starts one per tick regardless.
    await save(a.url, "per-second", scheduled('{cron: "* * * * * *", overlap: queue, catch_up: latest}'));
    while ((await runsOf(b.url, "per-second")).length < 3) await pause(100);
    // At a tick: the leader dies as it fires it.
    await pause(1000 - (Date.now() % 1000));
    await a.proc.kill("SIGKILL");
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      // Until B leads, has fired ticks of its own, and every tick claimed started (A's last one
      // too, if A died between claiming it and storing its run) has its run.
      const settled = async () =>
        (await leads(b)) &&
        (
          await client.query<{ runs: number; unstarted: number }>(
            `select (select count(*) from runs where trigger = 'schedule')::int as runs,
                    (select count(*) from schedule_ticks t where t.outcome = 'started'
                       and not exists (select 1 from runs r where r.id = t.run_id))::int as unstarted`,
          )
        ).rows.every((row) => row.runs >= 8 && row.unstarted === 0);
      while (!(await settled())) await pause(200);
      // A graceful stop finishes the pass under way: every tick it claimed has its run stored.
      await b.proc.kill("SIGTERM");
      const runs = (
        await client.query<{ id: string }>("select id from runs where trigger = 'schedule'")
      ).rows.map((row) => row.id);
      const ticks = (
        await client.query<{ tick_at: string; outcome: string; run_id: string | null }>(
          "select tick_at, outcome, run_id from schedule_ticks order by tick_at",
        )
      ).rows;
      const startedRuns = ticks.filter((t) => t.outcome === "started").map((t) => t.run_id);
      // Each tick that fired made exactly one run, and every run is a tick's.
      expect(new Set(runs).size).toBe(runs.length);
      expect([...runs].sort()).toEqual([...startedRuns].sort());
      expect(runs.length).toBeGreaterThanOrEqual(8);
      // No tick was lost silently: every second from the first tick to the last has its row.
      const times = ticks.map((t) => Date.parse(t.tick_at));
      const first = Math.min(...times);
      const last = Math.max(...times);
      expect(ticks.length).toBe((last - first) / 1000 + 1);
      expect(ticks.every((t) => t.outcome === "started" || t.outcome === "missed")).toBe(true);
    } finally {
      await client.end();
    }
  }, 90_000);
});
