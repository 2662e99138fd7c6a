import type { FastifyReply, FastifyRequest } from "fastify";
import type { Logger } from "../../core/logger.js";
import { redactedUrl } from "../../core/redacted-url.js";
import {
  formatTraceparent,
  parseTraceparent,
  parseTracestate,
  type TraceContext,
} from "../../core/trace-context.js";
import type { Store } from "../../store/index.js";
import type { EventBus } from "../event-bus.js";
import { RunTraceIds, type RunTraceRoot } from "./run-trace-ids.js";
import { RunTraces, runAttributes } from "./run-traces.js";
import { spanIds } from "./span-ids.js";
import type { TracingSettings } from "./tracing-settings.js";

/**
 * OpenTelemetry traces of runs (docs/observability.md): what the rest of the server calls, only
 * made when tracing is on. Every caller holds it as optional, so a server with tracing off loads
 * no SDK, subscribes to nothing and adds nothing to any job.
 */
export interface RunTracing {
  /** A step attempt's context for its job (`TRACEPARENT` of its processes). */
  stepTrace(runId: string, step: string, host: string, attempt: number): Promise<TraceContext | undefined>;
  /** An agent's turn context for its job. */
  turnTrace(runId: string, agent: string): Promise<TraceContext | undefined>;
  /**
   * A submitting request's `traceparent` (and `tracestate`), for the run it is about to submit:
   * the run's id, fixed in advance when the header is valid (an invalid one is ignored, as the W3C
   * spec says), for the route to give the run.
   */
  runIdFor(request: FastifyRequest, newRunId: () => string, given?: string): string | undefined;
  /** The submitting request's span (`POST /api/runs`, a hook delivery), under its caller's; the run's span is its child. */
  submitted(runId: string, request: FastifyRequest, reply: FastifyReply): void;
  /** Sends the spans the batch holds. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** How long a stopping server waits for its last spans to be sent. */
const closeWaitMs = 2000;

export async function startTracing(
  settings: TracingSettings,
  deps: { bus: EventBus; store: Pick<Store, "runs" | "jobs">; logger: Logger },
): Promise<RunTracing> {
  // Loaded only now: a server with tracing off never loads the SDK, and the bundle keeps the
  // packages otel-span-writer.ts alone imports in chunks of their own.
  const { otelSpanWriter } = await import("./otel-span-writer.js");
  const writer = otelSpanWriter(settings);
  const ids = new RunTraceIds((runId) => deps.store.runs.get(runId), writer);
  let failures = 0;
  const traces = new RunTraces(
    ids,
    writer,
    { run: (runId) => deps.store.runs.get(runId), job: (jobId) => deps.store.jobs.get(jobId) },
    // A trace is never worth a run: a store read that failed costs that span, said once in a while.
    (error) => {
      if (failures++ % 100 === 0) deps.logger.warn({ err: error }, "a run's span was not written");
    },
  );
  const unsubscribe = deps.bus.subscribeAll((events) => traces.observe(events));
  deps.logger.info(
    {
      endpoint: redactedUrl(settings.tracesUrl, "(an endpoint that does not parse)"),
      service: settings.serviceName,
      sampler: settings.sampler.name,
    },
    "tracing: runs exported over OTLP",
  );
  const contextOf = (root: RunTraceRoot, spanId: string): TraceContext => ({
    traceparent: formatTraceparent({ traceId: root.traceId, spanId, sampled: root.sampled }),
    ...(root.tracestate ? { tracestate: root.tracestate } : {}),
  });
  return {
    async stepTrace(runId, step, host, attempt) {
      return contextOf(await ids.rootOf(runId), spanIds.attempt(runId, step, host, attempt));
    },
    async turnTrace(runId, agent) {
      return contextOf(await ids.rootOf(runId), spanIds.agentTurn(runId, agent));
    },
    runIdFor(request, newRunId, given) {
      const header = request.headers.traceparent;
      const parsed = parseTraceparent(typeof header === "string" ? header : undefined);
      if (!parsed) return given;
      // Kept as runyard writes it (55 characters), not as sent: a later version's header may carry
      // any tail, which a flood of submits would otherwise hold in memory.
      const traceparent = formatTraceparent(parsed);
      const state = request.headers.tracestate;
      const tracestate = parseTracestate(Array.isArray(state) ? state.join(",") : state);
      const runId = given ?? newRunId();
      ids.callerOf(runId, { traceparent, ...(tracestate ? { tracestate } : {}) });
      return runId;
    },
    submitted(runId, request, reply) {
      const end = Date.now();
      const start = end - reply.elapsedTime;
      traces.submittedOverHttp(runId);
      void ids.rootOf(runId).then((root) => {
        writer.write(
          {
            traceId: root.traceId,
            spanId: spanIds.submit(runId),
            ...(root.parentSpanId
              ? { parentSpanId: root.parentSpanId, remoteParent: root.remoteParent }
              : {}),
            name: `${request.method} ${request.routeOptions.url ?? request.url}`,
            kind: "server",
            start: new Date(start),
            end: new Date(end),
            attributes: {
              ...runAttributes(runId, undefined),
              "http.request.method": request.method,
              "http.route": request.routeOptions.url ?? "",
              "http.response.status_code": reply.statusCode,
            },
          },
          root.sampled,
        );
      });
    },
    flush: () => writer.flush(),
    async close() {
      unsubscribe();
      // The last spans get a moment to leave; a collector away never holds a stopping server longer.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        writer.close().catch(() => undefined),
        new Promise((resolve) => {
          timer = setTimeout(resolve, closeWaitMs);
        }),
      ]);
      clearTimeout(timer);
    },
  };
}
