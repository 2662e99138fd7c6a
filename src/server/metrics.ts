import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import { z } from "zod";
import { type RunEvent, type RunKind, runKinds, runStatuses } from "../core/events.js";
import type { Store } from "../store/index.js";
import { isPlatformAdmin, requireServerWide } from "./auth.js";
import { botGauges } from "./bots/bot-metrics.js";
import { protectedErrorResponses } from "./error-responses.js";
import type { EventBus } from "./event-bus.js";
import type { LoginRefusal } from "./identity/refused-logins.js";
import { type TickCountOutcome, tickCountOutcomes } from "./schedules/scheduler.js";
import { usdOf } from "./spend-budgets.js";
import type { StreamGauge } from "./sse.js";

/** Process figures (CPU, memory, event loop lag), collected once however many apps a process builds. */
let processRegistry: Registry | undefined;

/** What this replica alone knows of itself (the store's counts are the fleet's). */
export interface ReplicaFigures {
  id: string;
  isLeader(): boolean;
  /** Runs this replica carries: their engines here, or parked here. */
  runsCarried(): number;
  /** Of those, the runs parked: queued, kept as their stored rows until a runner takes them up. */
  runsParked?(): number;
  /** Runners connected to this replica. */
  runnersConnected(): number;
  /** Schedule ticks this replica handled since it started, by outcome. */
  scheduleTicks?(): Readonly<Record<TickCountOutcome, number>>;
}

/**
 * The server's Prometheus metrics. The store's counts (runs, job queue, runners) are read at each scrape,
 * so they are right after a restart; durations and lags are observed from the events as stored.
 */
export class ServerMetrics {
  private readonly registry = new Registry();
  /** Series by tenant (spend, bots): a platform admin's alone; a scraper's tenantless token sees none. */
  private readonly tenantRegistry = new Registry();
  private readonly stepDuration: Histogram<"status">;
  private readonly queueWait: Histogram<"kind">;
  private readonly storeLag: Histogram;
  /** Open event streams. */
  readonly streams: StreamGauge;
  /** Counts a refused login by reason. */
  readonly loginRefused: (reason: LoginRefusal) => void;
  /** When each queued run was queued, until it starts or ends. */
  private readonly queuedAt = new Map<string, { kind: RunKind; at: number }>();
  private readonly unsubscribe: () => void;

  constructor(
    store: Pick<Store, "runs" | "jobs" | "runners" | "fleet" | "agentUsage" | "bots">,
    bus: EventBus,
    replica?: ReplicaFigures,
  ) {
    const registers = [this.registry];
    if (replica) this.replicaGauges(store, replica);
    const scheduleTicks = replica?.scheduleTicks;
    new Counter({
      name: "runyard_schedule_ticks_total",
      help: "Schedule ticks this replica handled, by outcome: fired (a run started), skipped (overlap, the hourly cap or a run quota), missed (no server ran at the tick, per catch_up), failed (the run could not start).",
      labelNames: ["outcome"],
      registers,
      collect() {
        // The scheduler keeps the counts; the counter shows them as they are at each scrape.
        const counts = scheduleTicks?.();
        this.reset();
        for (const outcome of tickCountOutcomes) this.inc({ outcome }, counts?.[outcome] ?? 0);
      },
    });
    new Gauge({
      name: "runyard_runs",
      help: "Runs by kind and status.",
      labelNames: ["kind", "status"],
      registers,
      async collect() {
        for (const kind of runKinds) for (const status of runStatuses) this.set({ kind, status }, 0);
        for (const { kind, status, count } of await store.runs.count()) this.set({ kind, status }, count);
      },
    });
    new Gauge({
      name: "runyard_jobs_queued",
      help: "Jobs (step attempts) waiting for a runner.",
      registers,
      async collect() {
        this.set((await store.jobs.queue()).queued);
      },
    });
    new Gauge({
      name: "runyard_job_queue_oldest_seconds",
      help: "How long the oldest queued job has waited for a runner; 0 when none waits.",
      registers,
      async collect() {
        const { oldest_created_at: oldest } = await store.jobs.queue();
        this.set(oldest ? Math.max(0, (Date.now() - Date.parse(oldest)) / 1000) : 0);
      },
    });
    // A tenant's runner names its own group: it is counted by tenant, for platform admins alone.
    new Gauge({
      name: "runyard_runners_online",
      help: "Runners outside any tenant connected now, by group.",
      labelNames: ["group"],
      registers,
      async collect() {
        this.reset();
        for (const runner of await store.runners.list({ status: "online" }))
          if (runner.tenant_id === null) this.inc({ group: runner.group });
      },
    });
    new Gauge({
      name: "runyard_tenant_runners_online",
      help: "A tenant's runners connected now, by group.",
      labelNames: ["tenant", "group"],
      registers: [this.tenantRegistry],
      async collect() {
        this.reset();
        for (const runner of await store.runners.list({ status: "online" }))
          if (runner.tenant_id !== null) this.inc({ tenant: runner.tenant_id, group: runner.group });
      },
    });
    this.agentUsageCounters(store, [this.tenantRegistry]);
    botGauges(store, [this.tenantRegistry]);
    const sseClients = new Gauge({
      name: "runyard_sse_clients",
      help: "Clients following a run's event stream now.",
      registers,
    });
    this.streams = { inc: () => sseClients.inc(), dec: () => sseClients.dec() };
    const refusedLogins = new Counter({
      name: "runyard_login_refused_total",
      help: "Refused logins since this replica started, by reason: wrong_credentials or rate_limited.",
      labelNames: ["reason"],
      registers,
    });
    for (const reason of ["wrong_credentials", "rate_limited"] as const) refusedLogins.inc({ reason }, 0);
    this.loginRefused = (reason) => refusedLogins.inc({ reason });
    this.queueWait = new Histogram({
      name: "runyard_run_queue_wait_seconds",
      help: "From a run's run.queued to its run.started: how long it waited for a runner.",
      labelNames: ["kind"],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800],
      registers,
    });
    this.stepDuration = new Histogram({
      name: "runyard_step_duration_seconds",
      help: "Duration of finished steps (all attempts), by final step status.",
      labelNames: ["status"],
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 1800, 7200],
      registers,
    });
    this.storeLag = new Histogram({
      name: "runyard_event_store_lag_seconds",
      help: "From an event's timestamp (when the spine numbered it) to when its batch was stored and published to followers.",
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.unsubscribe = bus.subscribeAll((events) => this.observe(events));
  }

  private observe(events: readonly RunEvent[]): void {
    const now = Date.now();
    const first = events[0];
    if (first) this.storeLag.observe(Math.max(0, (now - Date.parse(first.ts)) / 1000));
    for (const event of events) {
      switch (event.type) {
        case "run.queued":
          this.queuedAt.set(event.run_id, { kind: event.kind, at: Date.parse(event.ts) });
          break;
        case "run.started": {
          const queued = this.queuedAt.get(event.run_id);
          if (queued)
            this.queueWait.observe({ kind: queued.kind }, (Date.parse(event.ts) - queued.at) / 1000);
          this.queuedAt.delete(event.run_id);
          break;
        }
        case "run.finished":
          this.queuedAt.delete(event.run_id);
          break;
        case "step.finished":
          this.stepDuration.observe({ status: event.status }, event.duration_ms / 1000);
          break;
        default:
          break;
      }
    }
  }

  /** The Prometheus text; `tenants`: with the series labelled by tenant (a platform admin's scrape). */
  async text(options: { tenants: boolean } = { tenants: true }): Promise<string> {
    if (!processRegistry) {
      processRegistry = new Registry();
      collectDefaultMetrics({ register: processRegistry });
    }
    const tenants = options.tenants ? `${await this.tenantRegistry.metrics()}\n` : "";
    return `${await this.registry.metrics()}\n${tenants}${await processRegistry.metrics()}`;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  close(): void {
    this.unsubscribe();
  }

  /** Agents' tokens and dollars summed from the store's usage rows at each scrape: equal on every replica. */
  private agentUsageCounters(store: Pick<Store, "agentUsage">, registers: Registry[]): void {
    const labelNames = ["tenant", "agent", "model"] as const;
    type Totals = Map<
      string,
      { labels: Record<(typeof labelNames)[number], string>; input: number; output: number; usd: number }
    >;
    let read: Promise<Totals> | undefined;
    // One read serves both counters of a scrape.
    const totals = () => {
      read ??= store.agentUsage.sum({}).then((sums) => {
        const byKey: Totals = new Map();
        for (const sum of sums) {
          const labels = { tenant: sum.tenant_id, agent: sum.agent, model: sum.model };
          const key = JSON.stringify(labels);
          const entry = byKey.get(key) ?? { labels, input: 0, output: 0, usd: 0 };
          entry.input += sum.input_tokens;
          entry.output += sum.output_tokens;
          entry.usd += usdOf(sum);
          byKey.set(key, entry);
        }
        setTimeout(() => {
          read = undefined;
        }, 1000).unref();
        return byKey;
      });
      return read;
    };
    new Counter({
      name: "runyard_agent_tokens_total",
      help: "Tokens agents reported, by tenant (empty: none), agent, model and direction (input or output).",
      labelNames: [...labelNames, "direction"],
      registers,
      async collect() {
        this.reset();
        for (const entry of (await totals()).values()) {
          this.inc({ ...entry.labels, direction: "input" }, entry.input);
          this.inc({ ...entry.labels, direction: "output" }, entry.output);
        }
      },
    });
    new Counter({
      name: "runyard_agent_cost_usd_total",
      help: "Agents' spend in US dollars (reported costs, else list prices), by tenant (empty: none), agent and model.",
      labelNames: [...labelNames],
      registers,
      async collect() {
        this.reset();
        for (const entry of (await totals()).values()) this.inc(entry.labels, entry.usd);
      },
    });
  }

  /** A `replica` label keeps replicas behind one Service apart; the store's counts are the fleet's. */
  private replicaGauges(store: Pick<Store, "fleet">, replica: ReplicaFigures): void {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ replica: replica.id });
    this.tenantRegistry.setDefaultLabels({ replica: replica.id });
    const figures: [name: string, help: string, value: () => number | Promise<number>][] = [
      [
        "runyard_replica_leader",
        "1 while this replica leads the fleet (lease expiry, adopting the runs of dead replicas).",
        () => (replica.isLeader() ? 1 : 0),
      ],
      [
        "runyard_replica_runs_carried",
        "Runs this replica carries (their engines here, or parked here).",
        () => replica.runsCarried(),
      ],
      [
        "runyard_replica_runs_parked",
        "Queued runs this replica keeps as their stored rows alone until a runner takes them up.",
        () => replica.runsParked?.() ?? 0,
      ],
      [
        "runyard_replica_runners_connected",
        "Runners connected to this replica.",
        () => replica.runnersConnected(),
      ],
      [
        "runyard_replicas",
        "Server replicas heartbeating on the database.",
        async () => (await store.fleet.listReplicas()).length,
      ],
    ];
    for (const [name, help, value] of figures) {
      new Gauge({
        name,
        help,
        registers,
        async collect() {
          this.set(await value());
        },
      });
    }
  }
}

/**
 * `GET /metrics` for an admin token or a tenantless user token. Series by tenant (spend, bots) go to
 * platform admins only: what a tenant spends is its own, as `GET /api/usage` keeps it.
 */
export function metricsRoutes(app: FastifyInstance, metrics: ServerMetrics): void {
  app.withTypeProvider<ZodTypeProvider>().get(
    "/metrics",
    {
      schema: {
        operationId: "getMetrics",
        summary: "Prometheus metrics",
        description:
          "Prometheus text format: runs by kind and status, the job queue, runners online, step durations, queue wait, SSE clients, event store lag, process figures. Needs an admin token or a user token outside any tenant (the figures span every tenant). The series labelled by tenant (agents' tokens and spend, bots' figures) are a platform admin's alone.",
        tags: ["server"],
        response: {
          200: {
            description: "the metrics in Prometheus text format 0.0.4",
            content: { "text/plain": { schema: z.string() } },
          },
          ...protectedErrorResponses(),
        },
      },
      preValidation: async (request) => {
        requireServerWide(request);
      },
    },
    async (request, reply) =>
      reply
        .type(metrics.contentType)
        .send(await metrics.text({ tenants: isPlatformAdmin(request.principal) })),
  );
}
