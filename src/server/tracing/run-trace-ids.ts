import { parseTraceparent, type TraceContext } from "../../core/trace-context.js";
import type { RunRecord } from "../../store/index.js";
import { runTraceId, spanIds } from "./span-ids.js";
import type { SpanWriter } from "./span-writer.js";

/** Where a run's spans hang: its trace, the span its own run span is a child of, and whether it is kept. */
export interface RunTraceRoot {
  traceId: string;
  /** The caller's span (an incoming `traceparent`); absent: the run's own trace, or its caller run's. */
  parentSpanId?: string;
  /** The caller's `tracestate`, handed on to the run's steps and agents. */
  tracestate?: string;
  remoteParent: boolean;
  sampled: boolean;
}

type RunLookup = (runId: string) => Promise<RunRecord | undefined>;

/**
 * Each run's trace root, worked out once and kept while the run is followed: a caller's
 * `traceparent` gives its trace (kept in memory on the replica the run was submitted to: a run
 * resumed after a restart goes on in a trace of its own); a call's child run is in its parent's
 * trace, under the call step's span; any other run has a trace of its own, derived from its id.
 */
export class RunTraceIds {
  private readonly roots = new Map<string, Promise<RunTraceRoot>>();
  /** A run submitted with a `traceparent` -> that caller's context, noted before the run is stored. */
  private readonly callers = new Map<string, TraceContext>();
  /** A call's child run -> the calling step attempt's span, noted at the parent's `step.called`. */
  private readonly callSpans = new Map<string, string>();

  constructor(
    private readonly lookup: RunLookup,
    private readonly writer: Pick<SpanWriter, "sampled">,
  ) {}

  rootOf(runId: string, record?: RunRecord): Promise<RunTraceRoot> {
    let root = this.roots.get(runId);
    if (!root) {
      root = this.resolve(runId, record);
      keepNewest(this.roots, runId, root);
    }
    return root;
  }

  /** The run `runId` is to be submitted by a caller in trace `caller` (a valid `traceparent`). */
  callerOf(runId: string, caller: TraceContext): void {
    keepNewest(this.callers, runId, caller);
  }

  follows(runId: string): boolean {
    return this.roots.has(runId);
  }

  /** The parent run's `step.called`: the child's run span is a child of that attempt's span. */
  called(childRunId: string, attemptSpanId: string): void {
    keepNewest(this.callSpans, childRunId, attemptSpanId);
  }

  /** The call step's span the child run hangs under; undefined when this replica did not see the call. */
  callSpanOf(childRunId: string): string | undefined {
    return this.callSpans.get(childRunId);
  }

  /** The run has ended: what is kept of it goes (a child's call span once the child ends). */
  forget(runId: string): void {
    this.roots.delete(runId);
    this.callSpans.delete(runId);
    this.callers.delete(runId);
  }

  private async resolve(runId: string, known?: RunRecord): Promise<RunTraceRoot> {
    const record = known ?? (await this.lookup(runId));
    if (record?.parent_run_id) {
      const parent = await this.rootOf(record.parent_run_id);
      return {
        traceId: parent.traceId,
        remoteParent: false,
        sampled: parent.sampled,
        ...(parent.tracestate ? { tracestate: parent.tracestate } : {}),
      };
    }
    const given = this.callers.get(runId);
    const caller = parseTraceparent(given?.traceparent);
    if (caller) {
      return {
        traceId: caller.traceId,
        parentSpanId: caller.spanId,
        remoteParent: true,
        sampled: this.writer.sampled(caller.traceId, { sampled: caller.sampled }),
        ...(given?.tracestate ? { tracestate: given.tracestate } : {}),
      };
    }
    const traceId = runTraceId(runId);
    return { traceId, remoteParent: false, sampled: this.writer.sampled(traceId) };
  }
}

/** A link to the run span of the run `runId` (a retry's to the run it retries). */
export async function runSpanLink(
  ids: RunTraceIds,
  runId: string,
): Promise<{ traceId: string; spanId: string; attributes: Record<string, string> }> {
  const followed = ids.follows(runId);
  const root = await ids.rootOf(runId);
  if (!followed) ids.forget(runId);
  return { traceId: root.traceId, spanId: spanIds.run(runId), attributes: { "runyard.link": "retry_of" } };
}

/**
 * Runs followed at most at once. A replica sees the end of the runs it carries; one whose runner
 * reports for a run another replica carries never sees that run end, so the oldest are let go.
 */
export const maxFollowedRuns = 10_000;

/** Sets `key`, letting the oldest entry go past `maxFollowedRuns`. */
export function keepNewest<V>(map: Map<string, V>, key: string, value: V): void {
  if (map.size >= maxFollowedRuns) {
    const oldest = map.keys().next().value;
    if (oldest !== undefined) map.delete(oldest);
  }
  map.set(key, value);
}
