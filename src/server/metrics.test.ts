import { type ClientRequest, get } from "node:http";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { adminToken, makeToken, startInProcessServer } from "../../test/helpers/in-process.js";
import type { RunEvent } from "../core/events.js";
import type { Store } from "../store/index.js";
import { openMemoryStore } from "../store/sqlite.js";
import { EventBus } from "./event-bus.js";
import { ServerMetrics } from "./metrics.js";
import type { RunningServer } from "./server.js";

/** Opens an event stream and resolves once its head has arrived. */
function follow(url: URL): Promise<{ request: ClientRequest; status: number | undefined }> {
  return new Promise((resolve, reject) => {
    const request = get(url, { headers: { authorization: `Bearer ${adminToken}` } }, (response) =>
      resolve({ request, status: response.statusCode }),
    );
    request.on("error", reject);
  });
}

function withoutReplica(text: string): string {
  return text.replace(/\{replica="[^"]*"\}/g, "").replace(/,replica="[^"]*"|replica="[^"]*",/g, "");
}

/** The value of one sample line (`name{labels} value`), or undefined when it is absent. */
function sample(text: string, series: string): number | undefined {
  const line =
    text.split("\n").find((l) => l.startsWith(`${series} `)) ??
    // A server's series also carry its replica label; match them without it.
    withoutReplica(text)
      .split("\n")
      .find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe("ServerMetrics", () => {
  let store: Store;
  let bus: EventBus;
  let metrics: ServerMetrics;

  beforeEach(async () => {
    store = await openMemoryStore({ warn: () => {} });
    bus = new EventBus();
    metrics = new ServerMetrics(store, bus);
  });

  afterEach(async () => {
    metrics.close();
    await store.close();
  });

  const at = (ms: number): string => new Date(Date.UTC(2026, 0, 1) + ms).toISOString();
  const base = (seq: number, ms: number) => ({ run_id: "run_1", seq, ts: at(ms) });

  it("labels every series with the replica and gives what this replica alone knows", async () => {
    await store.fleet.heartbeat({
      id: "replica-a",
      hostname: "a",
      url: null,
      version: "0",
      schema_level: 45,
    });
    await store.fleet.heartbeat({
      id: "replica-b",
      hostname: "b",
      url: null,
      version: "0",
      schema_level: 45,
    });
    let leading = true;
    const labelled = new ServerMetrics(store, bus, {
      id: "replica-a",
      isLeader: () => leading,
      runsCarried: () => 3,
      runnersConnected: () => 2,
    });
    try {
      let text = await labelled.text();
      expect(sample(text, 'runyard_replica_leader{replica="replica-a"}')).toBe(1);
      expect(sample(text, 'runyard_replica_runs_carried{replica="replica-a"}')).toBe(3);
      expect(sample(text, 'runyard_replica_runners_connected{replica="replica-a"}')).toBe(2);
      expect(sample(text, 'runyard_replicas{replica="replica-a"}')).toBe(2);
      expect(sample(text, 'runyard_jobs_queued{replica="replica-a"}')).toBe(0);
      leading = false;
      text = await labelled.text();
      expect(sample(text, 'runyard_replica_leader{replica="replica-a"}')).toBe(0);
    } finally {
      labelled.close();
    }
  });

  it("counts runs by kind and status from the store, zero for the pairs with none", async () => {
    await store.runs.create({ kind: "workflow", name: "a" });
    await store.runs.create({ kind: "workflow", name: "b", status: "running" });
    const text = await metrics.text();
    expect(sample(text, 'runyard_runs{kind="workflow",status="queued"}')).toBe(1);
    expect(sample(text, 'runyard_runs{kind="workflow",status="running"}')).toBe(1);
    expect(sample(text, 'runyard_runs{kind="bot",status="failed"}')).toBe(0);
  });

  it("gives the job queue's depth and its oldest job's wait", async () => {
    const run = await store.runs.create({ kind: "workflow", name: "a" });
    await store.jobs.create({ run_id: run.id, requirements: { labels: [] }, payload: {}, created_at: at(0) });
    const text = await metrics.text();
    expect(sample(text, "runyard_jobs_queued")).toBe(1);
    expect(sample(text, "runyard_job_queue_oldest_seconds")).toBeGreaterThan(0);
  });

  it("counts runners online by group", async () => {
    const now = new Date().toISOString();
    for (const [id, group] of [
      ["r1", "linux"],
      ["r2", "linux"],
      ["r3", "gpu"],
    ] as const) {
      await store.runners.upsert({ id, group, labels: [], mode: "all", capacity: 1, hostname: id });
      if (id !== "r3") await store.runners.setStatus(id, "online", now);
    }
    const text = await metrics.text();
    expect(sample(text, 'runyard_runners_online{group="linux"}')).toBe(2);
    expect(sample(text, 'runyard_runners_online{group="gpu"}')).toBeUndefined();
  });

  it("observes step durations, queue wait and store lag from published events", async () => {
    const events: RunEvent[] = [
      { ...base(1, 0), type: "run.queued", kind: "workflow" },
      { ...base(2, 1500), type: "run.started" },
      {
        ...base(3, 1600),
        type: "step.finished",
        step: "s",
        host: "local",
        status: "success",
        exit_code: 0,
        attempts: 1,
        duration_ms: 2500,
      },
    ];
    bus.publish(events);
    const text = await metrics.text();
    expect(sample(text, 'runyard_step_duration_seconds_sum{status="success"}')).toBe(2.5);
    expect(sample(text, 'runyard_step_duration_seconds_count{status="success"}')).toBe(1);
    expect(sample(text, 'runyard_run_queue_wait_seconds_sum{kind="workflow"}')).toBe(1.5);
    expect(sample(text, "runyard_event_store_lag_seconds_count")).toBe(1);
    expect(sample(text, "runyard_event_store_lag_seconds_sum")).toBeGreaterThan(0);
  });

  it("stops observing once closed", async () => {
    metrics.close();
    bus.publish([{ ...base(1, 0), type: "run.queued", kind: "workflow" }]);
    expect(sample(await metrics.text(), "runyard_event_store_lag_seconds_count")).toBe(0);
  });
});

describe("GET /metrics", () => {
  let server: RunningServer;

  beforeAll(async () => {
    server = await startInProcessServer();
  });

  afterAll(async () => {
    await server.close();
  });

  const scrape = (token: string | undefined) =>
    server.app.inject({
      method: "GET",
      url: "/metrics",
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });

  it("needs a token", async () => {
    const response = await scrape(undefined);
    expect(response.statusCode).toBe(401);
  });

  it("refuses a tenant's token, since the figures span every tenant", async () => {
    const response = await scrape(await makeToken(server, "user", { tenant_id: "acme" }));
    expect(response.statusCode).toBe(403);
    expect(response.json().error.hint).toContain("a user token outside any tenant");
  });

  it("answers Prometheus text to an admin token and to a user token outside any tenant", async () => {
    for (const token of [adminToken, await makeToken(server, "user")]) {
      const response = await scrape(token);
      expect(response.statusCode).toBe(200);
      expect(response.headers["content-type"]).toBe("text/plain; version=0.0.4; charset=utf-8");
      expect(response.body).toContain("# TYPE runyard_runs gauge");
      expect(response.body).toContain("# TYPE runyard_step_duration_seconds histogram");
      expect(response.body).toContain("process_cpu_user_seconds_total");
    }
  });

  it("shows what each tenant spends to platform admins alone: a user token outside any tenant gets no tenant's series", async () => {
    const run = await server.store.runs.create({ kind: "agent", name: "t", tenant_id: "spender" });
    const job = await server.store.jobs.create({ run_id: run.id, requirements: { labels: [] }, payload: {} });
    await server.store.events.appendForRun(
      run.id,
      [
        {
          ts: new Date().toISOString(),
          type: "agent.usage",
          agent: "openai",
          model: "gpt-4.1",
          input_tokens: 1000,
          output_tokens: 10,
          cost_usd: 0.5,
        },
      ],
      { job: { id: job.id, seq: 1 } },
    );
    // A scrape reads the usage totals once a second: the admin's next ones show the new spend.
    const spent = 'runyard_agent_cost_usd_total{tenant="spender",agent="openai",model="gpt-4.1"}';
    await expect.poll(async () => sample((await scrape(adminToken)).body, spent)).toBe(0.5);
    const scraper = await scrape(await makeToken(server, "user"));
    expect(scraper.statusCode).toBe(200);
    expect(scraper.body).toContain("# TYPE runyard_runs gauge");
    expect(scraper.body).not.toContain("spender");
    expect(scraper.body).not.toMatch(/\btenant="/);
    expect(scraper.body).not.toContain("runyard_agent_cost_usd_total");
    expect(scraper.body).not.toContain("runyard_bot_memory_bytes");
  });

  it("names a tenant's runners' groups to platform admins alone, as its spend", async () => {
    await server.store.runners.upsert({
      id: "tenant-runner",
      group: "acme-secret-project",
      labels: [],
      mode: "all",
      capacity: 1,
      hostname: "h",
      tenant_id: "acme",
    });
    await server.store.runners.setStatus("tenant-runner", "online", new Date().toISOString());
    const scraper = await scrape(await makeToken(server, "user"));
    expect(scraper.statusCode).toBe(200);
    expect(scraper.body).not.toContain("acme-secret-project");
    const admin = await scrape(adminToken);
    expect(
      sample(admin.body, 'runyard_tenant_runners_online{tenant="acme",group="acme-secret-project"}'),
    ).toBe(1);
  });

  it("counts submitted runs and the clients following a run's events", async () => {
    const workflow =
      "version: v0.1\nname: m\ninventory:\n  hosts:\n    x: {group: nobody}\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: echo hi\n";
    const submitted = await server.app.inject({
      method: "POST",
      url: "/api/runs",
      headers: { authorization: `Bearer ${adminToken}` },
      payload: { workflow },
    });
    const runId = submitted.json<{ run_id: string }>().run_id;
    const before = (await scrape(adminToken)).body;
    expect(sample(before, 'runyard_runs{kind="workflow",status="queued"}')).toBeGreaterThanOrEqual(1);
    expect(sample(before, "runyard_sse_clients")).toBe(0);

    const { request, status } = await follow(new URL(`/api/runs/${runId}/events`, server.url));
    expect(status).toBe(200);
    expect(sample((await scrape(adminToken)).body, "runyard_sse_clients")).toBe(1);
    request.destroy();
    await expect.poll(async () => sample((await scrape(adminToken)).body, "runyard_sse_clients")).toBe(0);
  });
});
