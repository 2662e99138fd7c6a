import { RunyardError } from "../core/errors.js";
import type { RunEvent, StepSummary } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import { StepAttemptRequest, StepAttemptResult, type StepRunner } from "../core/step-attempt.js";
import { DirectStepRunner } from "../runner/direct-client.js";
import type { RunRecord, Store } from "../store/types.js";
import { runWorkflow } from "../workflow/engine.js";
import { formatDiagnostic, type HostSpec, type Workflow } from "../workflow/model.js";
import { parseWorkflow } from "../workflow/parse.js";
import { hostKey } from "../workflow/resume.js";
import { workflowMasker } from "../workflow/secrets.js";
import type { EventBus } from "./event-bus.js";
import type { JobBroker } from "./job-broker.js";
import type { Notifier, StateChange } from "./notifier.js";
import { RunSink } from "./run-sink.js";

/**
 * What `POST /api/runs` stores as the run's spec: the real vars, as the engine needs them after
 * a restart (the store encrypts specs at rest; the API never shows them). The run record's
 * `vars` are what users see, masked like the events.
 */
export interface WorkflowRunSpec {
  workflow: string;
  vars: Record<string, string>;
  file?: string;
}

interface ActiveRun {
  record: RunRecord;
  workflow: Workflow;
  sink: RunSink;
  controller: AbortController;
  steps: Map<string, StepSummary>;
  vars: Record<string, string>;
  started: boolean;
  done: Promise<void>;
  /** Resolves once `run.queued` is stored: what `POST /api/runs` waits for. */
  queuedStored: Promise<unknown>;
}

/**
 * The life of server runs: submitted, queued, run by the engine with steps placed on runners
 * (or agent-servers), followed live, canceled, and carried on after a server restart.
 */
export class RunManager {
  private readonly active = new Map<string, ActiveRun>();

  constructor(
    private readonly store: Store,
    private readonly bus: EventBus,
    private readonly broker: JobBroker,
    private readonly notifier: Notifier,
    private readonly logger: Logger,
    private readonly limits: { maxRunLogBytes: number },
  ) {}

  /** Validates and queues a workflow run; resolves with its record once `run.queued` is stored. */
  async submitWorkflow(
    spec: WorkflowRunSpec,
    owner: { tenantId: string | null; tokenId: string | null },
  ): Promise<RunRecord> {
    const file = spec.file ?? "workflow.yaml";
    const { workflow, diagnostics } = parseWorkflow(spec.workflow, file);
    if (!workflow) {
      throw new RunyardError(
        "WORKFLOW_INVALID",
        `${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"} in ${file}:\n${diagnostics.map(formatDiagnostic).join("\n")}`,
        { details: diagnostics },
      );
    }
    const vars = { ...workflow.vars, ...spec.vars };
    const record = await this.store.createRun({
      kind: "workflow",
      name: workflow.name,
      status: "queued",
      tenant_id: owner.tenantId,
      created_by: owner.tokenId,
      spec,
      vars: workflowMasker(workflow, vars).maskDeep(vars),
    });
    const run = this.activate(record, workflow, { events: [] }, (sink) =>
      sink.emit({ type: "run.queued", kind: "workflow", name: workflow.name }),
    );
    await run.queuedStored;
    return record;
  }

  /** Starts the engine for a run; `first` emits what must precede the engine's own events. */
  private activate(
    record: RunRecord,
    workflow: Workflow,
    resume: { events: RunEvent[]; exports?: Map<string, Record<string, string>> },
    first?: (sink: RunSink) => void,
  ): ActiveRun {
    const controller = new AbortController();
    const run: ActiveRun = {
      record,
      workflow,
      controller,
      steps: new Map(record.steps.map((s) => [`${s.name}\u0000${s.host}`, s])),
      vars: { ...record.vars },
      started: record.status === "running",
      sink: new RunSink(
        record.id,
        record.last_seq,
        this.store,
        this.bus,
        (events) => this.observe(run, events),
        { maxBytes: this.limits.maxRunLogBytes, storedBytes: storedOutputBytes(resume.events) },
      ),
      done: Promise.resolve(),
      queuedStored: Promise.resolve(),
    };
    this.active.set(record.id, run);
    if (first) {
      first(run.sink);
      run.queuedStored = run.sink.flush();
    }
    const spec = record.spec as WorkflowRunSpec;
    run.done = runWorkflow({
      workflow,
      runId: record.id,
      vars: spec.vars,
      emit: run.sink.emit,
      runnerFor: (host, hostSpec) => this.runnerFor(run, host, hostSpec),
      signal: controller.signal,
      resume: resume.events,
      ...(resume.exports ? { resumeExports: resume.exports } : {}),
      announceStart: false,
    })
      .then(() => run.sink.drain())
      .catch((error: unknown) => this.logger.error({ err: error, runId: record.id }, "run engine failed"))
      .finally(() => {
        this.active.delete(record.id);
        this.broker.forgetRun(record.id);
      });
    return run;
  }

  private runnerFor(run: ActiveRun, host: string, spec: HostSpec): StepRunner {
    if (spec.kind === "direct") {
      const direct = new DirectStepRunner({
        address: spec.address,
        ...(spec.token ? { token: spec.token } : {}),
      });
      return {
        runAttempt: (request, io) => {
          this.markStarted(run.record.id, `agent-server ${spec.address}`);
          return direct.runAttempt(request, io);
        },
      };
    }
    const requirements =
      spec.kind === "runner"
        ? { ...(spec.group ? { group: spec.group } : {}), labels: spec.labels }
        : { labels: [] };
    return this.broker.stepRunner(run.record.id, run.sink, { host, requirements }, run.record.tenant_id);
  }

  /** The first time a runner takes work of a queued run, the run is running. */
  markStarted(runId: string, runnerId: string): void {
    const run = this.active.get(runId);
    if (!run || run.started) return;
    run.started = true;
    run.sink.emit({ type: "run.started", name: run.workflow.name, runner_id: runnerId });
  }

  /** Keeps the run record in step with its events, and tells webhooks of state changes. */
  private async observe(run: ActiveRun, events: RunEvent[]): Promise<void> {
    const id = run.record.id;
    let stepsChanged = false;
    for (const event of events) {
      switch (event.type) {
        case "run.started":
          await this.store.updateRun(
            id,
            { status: "running", started_at: event.ts },
            { ifStatus: ["queued"] },
          );
          break;
        case "step.started":
          run.steps.set(`${event.step}\u0000${event.host}`, {
            name: event.step,
            host: event.host,
            status: "running",
            exit_code: null,
            attempts: event.attempt,
          });
          stepsChanged = true;
          break;
        case "step.finished": {
          const { step, host, status, exit_code, attempts, duration_ms, error } = event;
          run.steps.set(`${step}\u0000${host}`, {
            name: step,
            host,
            status,
            exit_code,
            attempts,
            duration_ms,
            ...(error ? { error } : {}),
          });
          stepsChanged = true;
          break;
        }
        case "vars.exported":
          Object.assign(run.vars, event.vars);
          await this.store.updateRun(id, { vars: run.vars });
          break;
        case "run.finished":
          await this.store.updateRun(id, {
            status: event.status,
            finished_at: event.ts,
            vars: event.vars ?? run.vars,
            steps: event.steps ?? [...run.steps.values()],
            error: event.error ?? null,
          });
          stepsChanged = false;
          break;
        default:
          break;
      }
      this.notify(run, event);
    }
    if (stepsChanged) await this.store.updateRun(id, { steps: [...run.steps.values()] });
  }

  private notify(run: ActiveRun, event: RunEvent): void {
    if (run.workflow.notify.length === 0) return;
    let change: StateChange | undefined;
    const base = {
      run_id: run.record.id,
      workflow_name: run.workflow.name,
      timestamp: event.ts,
      version: event.seq,
    };
    if (event.type === "run.queued")
      change = { ...base, status: "queued", step: null, host: null, error: null };
    if (event.type === "run.started")
      change = { ...base, status: "running", step: null, host: null, error: null };
    if (event.type === "run.finished") {
      change = { ...base, status: event.status, step: null, host: null, error: event.error?.message ?? null };
    }
    if (event.type === "step.started") {
      change = { ...base, status: "running", step: event.step, host: event.host, error: null };
    }
    if (event.type === "step.finished") {
      change = {
        ...base,
        status: event.status,
        step: event.step,
        host: event.host,
        error: event.error?.message ?? null,
      };
    }
    if (!change) return;
    for (const target of run.workflow.notify) {
      void this.notifier.send(target, change, (message) => {
        void this.store.updateRun(run.record.id, { last_notify_error: message });
      });
    }
  }

  /**
   * Cancels a queued or running run; its processes get SIGTERM, then SIGKILL. Answers once the
   * run has ended, or after `answerWithinMs` while a runner is still stopping a step that traps
   * SIGTERM: the record then still says running, and `run.finished` follows.
   */
  async cancel(runId: string, answerWithinMs = 900): Promise<RunRecord> {
    const run = this.active.get(runId);
    if (!run) {
      const record = await this.store.getRun(runId);
      if (!record) throw new RunyardError("NOT_FOUND", `run ${runId} does not exist`);
      throw new RunyardError("CONFLICT", `run ${runId} has already ended (${record.status})`, {
        hint: "Only queued or running runs can be canceled.",
      });
    }
    run.controller.abort();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([run.done, new Promise((resolve) => (timer = setTimeout(resolve, answerWithinMs)))]);
    clearTimeout(timer);
    const record = await this.store.getRun(runId);
    if (!record) throw new RunyardError("NOT_FOUND", `run ${runId} does not exist`);
    return record;
  }

  /**
   * After a restart: runs left queued or running go on from their stored events. Their jobs'
   * leases get `graceMs` for the runners to come back; runs whose runner does not return end
   * `interrupted` (RUNNER_LOST) when the leases lapse, or retry where the workflow allows.
   */
  async recover(graceMs: number): Promise<number> {
    const runs = await this.store.listRunsByStatus(["queued", "running"]);
    const lease = new Date(Date.now() + graceMs).toISOString();
    for (const job of await this.store.listJobs({ statuses: ["assigned", "running"] })) {
      await this.store.updateJob(job.id, { lease_expires_at: lease });
    }
    for (const record of runs) {
      const spec = record.spec as WorkflowRunSpec;
      const { workflow } = parseWorkflow(spec.workflow, spec.file ?? "workflow.yaml");
      if (!workflow) {
        await this.store.markInterruptedRunning(
          { code: "INVALID_INPUT", message: "the stored workflow no longer parses" },
          { ids: [record.id] },
        );
        continue;
      }
      const events = await this.allEvents(record.id);
      const finished = events.find((e) => e.type === "run.finished");
      if (finished?.type === "run.finished") {
        // It ended, but the server stopped before the record said so.
        await this.store.updateRun(record.id, {
          status: finished.status,
          finished_at: finished.ts,
          ...(finished.vars ? { vars: finished.vars } : {}),
          ...(finished.steps ? { steps: finished.steps } : {}),
          error: finished.error ?? null,
        });
        continue;
      }
      await this.broker.restorePins(record.id);
      this.activate(record, workflow, { events, exports: await this.realExports(record.id) });
      this.logger.info({ runId: record.id, events: events.length }, "resuming run after restart");
    }
    return runs.length;
  }

  /**
   * What each step exported, as the values themselves, from the results of its last finished
   * job: the events hold secrets masked, and later steps need them real.
   */
  private async realExports(runId: string): Promise<Map<string, Record<string, string>>> {
    const latest = new Map<string, { attempt: number; exports: Record<string, string> }>();
    for (const job of await this.store.listJobs({ runId })) {
      const request = StepAttemptRequest.safeParse(job.payload);
      const result = StepAttemptResult.safeParse(job.result);
      if (job.status !== "done" || !request.success || !result.success) continue;
      const key = hostKey(request.data.step, request.data.host);
      const known = latest.get(key);
      if (!known || known.attempt < request.data.attempt) {
        latest.set(key, { attempt: request.data.attempt, exports: result.data.exports });
      }
    }
    return new Map([...latest].map(([key, { exports }]) => [key, exports]));
  }

  private async allEvents(runId: string): Promise<RunEvent[]> {
    const events: RunEvent[] = [];
    for (;;) {
      const page = await this.store.listEvents(runId, { after: events.at(-1)?.seq ?? 0, limit: 10_000 });
      events.push(...page);
      if (page.length < 10_000) return events;
    }
  }

  /** Cancels nothing: runs stay as they are for `recover` on the next start. */
  async close(): Promise<void> {
    for (const run of this.active.values()) await run.sink.drain();
  }

  get activeRuns(): number {
    return this.active.size;
  }
}

/** The output bytes among a resumed run's stored events, so its log cap goes on from there. */
function storedOutputBytes(events: readonly RunEvent[]): number {
  let bytes = 0;
  for (const event of events)
    if (event.type === "step.output") bytes += Buffer.byteLength(event.data, "utf8");
  return bytes;
}
