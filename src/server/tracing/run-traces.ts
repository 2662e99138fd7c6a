import type { EventOf, RunEvent } from "../../core/events.js";
import { assertExhaustive } from "../../core/exhaustive.js";
import type { JobRecord, RunRecord } from "../../store/index.js";
import { stepJobId } from "../job-records.js";
import { AgentSpans } from "./agent-spans.js";
import { keepNewest, type RunTraceIds, type RunTraceRoot, runSpanLink } from "./run-trace-ids.js";
import { spanIds } from "./span-ids.js";
import type { FinishedSpan, SpanWriter } from "./span-writer.js";

/** What the run traces read from the store: a run's record, a step job's row (its runner, its queue time). */
export interface TraceLookups {
  run(runId: string): Promise<RunRecord | undefined>;
  job(jobId: string): Promise<JobRecord | undefined>;
}

/** One run followed on this replica's bus, from its first event seen to its `run.finished`. */
interface FollowedRun {
  record: RunRecord | undefined;
  root: RunTraceRoot;
  start: Date;
  /** Each step's current attempt: when it started (`step\0host` -> attempt, start). */
  attempts: Map<string, { attempt: number; start: Date }>;
  /** Approval steps waiting, since when. */
  waits: Map<string, { start: Date; required: number }>;
  agents: AgentSpans;
  /** A bot run's last `bot.state` time: each state change is a span from the one before. */
  lastBotState?: { state: string; at: Date; said: string };
  /** The runner that took the run up (`run.started`): a bot's, for its state spans. */
  runnerId?: string;
}

/**
 * Spans of every run whose events this replica's bus carries, derived from the event spine (the
 * events say what happened and when): the run, each step attempt with its queue wait, approvals
 * and their waiting, agent turns and model calls, bots' state changes. Each span is written once
 * it has ended, under ids derived from what it stands for (span-ids.ts), so a child may be written
 * before its parent and a step's `TRACEPARENT` names its attempt's span before it starts.
 */
export class RunTraces {
  private readonly runs = new Map<string, Promise<FollowedRun>>();
  /** Runs whose submit (HTTP) span this replica wrote: their run span is its child. */
  /** Runs whose submit span was written here, until their run span is (capped as `runs` is). */
  private readonly submitted = new Map<string, true>();

  constructor(
    private readonly ids: RunTraceIds,
    private readonly writer: SpanWriter,
    private readonly lookups: TraceLookups,
    private readonly onError: (error: unknown) => void,
  ) {}

  /** A stored batch, in order: each run's events are handled one after the other. */
  observe(events: readonly RunEvent[]): void {
    for (const event of events) {
      // A run's output, the bulk of its events, makes no span: it costs no turn of the loop here.
      if (event.type === "step.output" || event.type === "notice") continue;
      const followed = this.follow(event);
      followed.then((run) => this.handle(run, event)).catch(this.onError);
    }
  }

  /** The submit span of `runId` was written (routes' hook): its run span hangs under it. */
  submittedOverHttp(runId: string): void {
    keepNewest(this.submitted, runId, true);
  }

  private follow(event: RunEvent): Promise<FollowedRun> {
    let run = this.runs.get(event.run_id);
    if (!run) {
      run = this.start(event);
      keepNewest(this.runs, event.run_id, run);
    }
    return run;
  }

  private async start(first: RunEvent): Promise<FollowedRun> {
    const record = await this.lookups.run(first.run_id);
    const root = await this.ids.rootOf(first.run_id, record);
    // A run first seen mid-way (resumed here, or another replica's) starts when it was stored.
    const start = first.type === "run.queued" || !record ? new Date(first.ts) : new Date(record.created_at);
    return {
      record,
      root,
      start,
      attempts: new Map(),
      waits: new Map(),
      agents: new AgentSpans(first.run_id, root, record),
    };
  }

  private async handle(run: FollowedRun, event: RunEvent): Promise<void> {
    switch (event.type) {
      case "step.started":
        run.attempts.set(stepKey(event), { attempt: event.attempt, start: new Date(event.ts) });
        return;
      case "step.retrying":
        return this.attemptEnded(run, event, event.attempt, "failed", event.exit_code, event.error?.code);
      case "step.finished": {
        const current = run.attempts.get(stepKey(event));
        if (!current) return; // skipped, or kept from the run it retries: it never ran here
        return this.attemptEnded(
          run,
          event,
          current.attempt,
          event.status,
          event.exit_code,
          event.error?.code,
        );
      }
      case "step.waiting":
        run.waits.set(stepKey(event), { start: new Date(event.ts), required: event.required ?? 1 });
        return;
      case "approval.answered":
        return this.approvalAnswered(run, event);
      case "step.called": {
        const attempt = run.attempts.get(stepKey(event))?.attempt ?? 1;
        this.ids.called(event.child_run_id, spanIds.attempt(event.run_id, event.step, event.host, attempt));
        return;
      }
      case "agent.message":
      case "agent.tool_call":
      case "agent.tool_result":
      case "agent.usage":
        for (const span of run.agents.observe(event)) this.write(run, span);
        return;
      case "bot.state":
        return this.botState(run, event);
      case "run.finished":
        return this.runFinished(run, event);
      case "run.started":
        if (event.runner_id) run.runnerId = event.runner_id;
        return;
      case "run.queued":
      case "step.output":
      case "approval.vote":
      case "vars.exported":
      case "artifact.created":
      case "notice":
        return;
      default:
        assertExhaustive(event);
    }
  }

  private async attemptEnded(
    run: FollowedRun,
    event: EventOf<"step.retrying"> | EventOf<"step.finished">,
    attempt: number,
    status: string,
    exitCode: number | null,
    errorCode: string | undefined,
  ): Promise<void> {
    const key = stepKey(event);
    const started = run.attempts.get(key);
    run.attempts.delete(key);
    const end = new Date(event.ts);
    const begun = started?.start ?? end;
    const job = await this.lookups.job(stepJobId(event.run_id, event.step, event.host, attempt));
    const queued = job ? new Date(job.created_at) : undefined;
    const spanId = spanIds.attempt(event.run_id, event.step, event.host, attempt);
    this.write(run, {
      traceId: run.root.traceId,
      spanId,
      parentSpanId: spanIds.run(event.run_id),
      name: `step ${event.step}`,
      start: queued && queued < begun ? queued : begun,
      end,
      attributes: {
        ...runAttributes(event.run_id, run.record),
        "runyard.step": event.step,
        "runyard.host": event.host,
        "runyard.step.attempt": attempt,
        "runyard.step.status": status,
        ...(job?.runner_id ? { "runyard.runner.id": job.runner_id } : {}),
        ...(exitCode !== null ? { "process.exit.code": exitCode } : {}),
        ...(errorCode ? { "error.type": errorCode, "runyard.error.code": errorCode } : {}),
      },
      ...(status !== "success" && status !== "skipped" ? { error: errorCode ?? status } : {}),
    });
    if (job) this.runnerSpans(run, event, attempt, job.result, begun, end);
    if (queued && queued < begun) {
      this.write(run, {
        traceId: run.root.traceId,
        spanId: spanIds.queueWait(event.run_id, event.step, event.host, attempt),
        parentSpanId: spanId,
        name: "queue wait",
        start: queued,
        end: begun,
        attributes: {
          "runyard.run.id": event.run_id,
          "runyard.step": event.step,
          ...(job?.runner_id ? { "runyard.runner.id": job.runner_id } : {}),
        },
      });
    }
  }

  /**
   * The runner's part of an attempt, from the times its result gives (a runner's durations, laid
   * back from the attempt's end, so no two clocks are compared): entering the sandbox, then the
   * commands. A result without `setup_ms` (an older runner, an agent or bot job) has none.
   */
  private runnerSpans(
    run: FollowedRun,
    event: EventOf<"step.retrying"> | EventOf<"step.finished">,
    attempt: number,
    result: unknown,
    begun: Date,
    end: Date,
  ): void {
    const { duration_ms: duration, setup_ms: setup } = (result ?? {}) as Record<string, unknown>;
    if (typeof duration !== "number" || typeof setup !== "number") return;
    // A runner's figures are its word: negative ones would lay a span past the attempt's end (or
    // at an invalid time, which fails the exporter's whole batch, every tenant's spans in it).
    if (!(setup >= 0 && setup <= duration && Number.isFinite(duration))) return;
    const at = (ms: number) => new Date(Math.max(begun.getTime(), end.getTime() - ms));
    const parent = spanIds.attempt(event.run_id, event.step, event.host, attempt);
    const attributes = { "runyard.run.id": event.run_id, "runyard.step": event.step };
    const commandStart = at(duration - setup);
    this.write(run, {
      traceId: run.root.traceId,
      spanId: spanIds.setup(event.run_id, event.step, event.host, attempt),
      parentSpanId: parent,
      name: "sandbox entry",
      start: at(duration),
      end: commandStart,
      attributes,
    });
    this.write(run, {
      traceId: run.root.traceId,
      spanId: spanIds.command(event.run_id, event.step, event.host, attempt),
      parentSpanId: parent,
      name: "command",
      start: commandStart,
      end,
      attributes,
    });
  }

  private approvalAnswered(run: FollowedRun, event: EventOf<"approval.answered">): void {
    const key = stepKey(event);
    const waiting = run.waits.get(key);
    run.waits.delete(key);
    const attempt = run.attempts.get(key)?.attempt ?? 1;
    this.write(run, {
      traceId: run.root.traceId,
      spanId: spanIds.approval(event.run_id, event.step, event.host),
      parentSpanId: spanIds.attempt(event.run_id, event.step, event.host, attempt),
      name: `approval ${event.step}`,
      start: waiting?.start ?? new Date(event.ts),
      end: new Date(event.ts),
      attributes: {
        "runyard.run.id": event.run_id,
        "runyard.step": event.step,
        "runyard.approval.decision": event.decision,
        "runyard.approval.required": waiting?.required ?? 1,
      },
      ...(event.decision !== "approved" ? { error: event.decision } : {}),
    });
  }

  private botState(run: FollowedRun, event: EventOf<"bot.state">): void {
    const at = new Date(event.ts);
    const before = run.lastBotState;
    // The same state said again (a stop told by the server and then by the runner): no new span.
    const said = JSON.stringify([event.state, event.restarts, event.health?.status, event.exit_code]);
    if (before?.said === said) return;
    run.lastBotState = { state: event.state, at, said };
    const runnerId = event.runner_id ?? run.runnerId;
    this.write(run, {
      traceId: run.root.traceId,
      spanId: spanIds.bot(event.run_id, event.seq),
      parentSpanId: spanIds.run(event.run_id),
      name: `bot ${event.state}`,
      start: before?.at ?? run.start,
      end: at,
      attributes: {
        ...runAttributes(event.run_id, run.record),
        "runyard.bot.id": event.bot_id,
        "runyard.bot.state": event.state,
        ...(before ? { "runyard.bot.previous_state": before.state } : {}),
        ...(runnerId ? { "runyard.runner.id": runnerId } : {}),
        ...(event.exit_code !== undefined && event.exit_code !== null
          ? { "process.exit.code": event.exit_code }
          : {}),
        ...(event.restarts !== undefined ? { "runyard.bot.restarts": event.restarts } : {}),
        ...(event.health ? { "runyard.bot.health": event.health.status } : {}),
        ...(event.error ? { "runyard.error.code": event.error.code } : {}),
      },
      ...(event.state === "crashed" || event.state === "timeout"
        ? { error: event.error?.code ?? event.state }
        : {}),
    });
  }

  private async runFinished(run: FollowedRun, event: EventOf<"run.finished">): Promise<void> {
    const runId = event.run_id;
    this.runs.delete(runId);
    const end = new Date(event.ts);
    for (const span of run.agents.finished(event)) this.write(run, span);
    const retryOf = run.record?.retry_of;
    const parentRun = run.record?.parent_run_id;
    const parentSpanId = this.submitted.delete(runId)
      ? spanIds.submit(runId)
      : parentRun
        ? (this.ids.callSpanOf(runId) ?? spanIds.run(parentRun))
        : run.root.parentSpanId;
    this.write(run, {
      traceId: run.root.traceId,
      spanId: spanIds.run(runId),
      ...(parentSpanId
        ? { parentSpanId, remoteParent: parentSpanId === run.root.parentSpanId && run.root.remoteParent }
        : {}),
      name: `run ${run.record?.saved_workflow ?? run.record?.name ?? runId}`,
      start: run.start,
      end,
      attributes: {
        ...runAttributes(runId, run.record),
        "runyard.run.status": event.status,
        ...(run.record
          ? { "runyard.run.kind": run.record.kind, "runyard.run.trigger": run.record.trigger }
          : {}),
        ...(parentRun ? { "runyard.run.parent_id": parentRun } : {}),
        ...(retryOf ? { "runyard.run.retry_of": retryOf } : {}),
        ...(event.error ? { "error.type": event.error.code, "runyard.error.code": event.error.code } : {}),
      },
      ...(retryOf ? { links: [await runSpanLink(this.ids, retryOf)] } : {}),
      ...(event.status !== "success" ? { error: event.error?.code ?? event.status } : {}),
    });
    this.ids.forget(runId);
  }

  private write(run: FollowedRun, span: FinishedSpan): void {
    this.writer.write(span, run.root.sampled);
  }
}

function stepKey(event: { step: string; host: string }): string {
  return `${event.step}\u0000${event.host}`;
}

/** What every span of a run carries: ids and names, never a variable's value. */
export function runAttributes(runId: string, record: RunRecord | undefined): Record<string, string> {
  return {
    "runyard.run.id": runId,
    ...(record?.tenant_id ? { "runyard.tenant.id": record.tenant_id } : {}),
    ...(record ? { "runyard.workflow": record.saved_workflow ?? record.name } : {}),
  };
}
