/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): where a run's trace stands, handed to
 * a step or an agent turn as `TRACEPARENT` / `TRACESTATE` so its own instrumented program joins
 * the run's trace. The server sets it on a job only when tracing is on (server/tracing/); the
 * job's schema of it is trace-context-schema.ts, apart, so that `runyard run`, which reads no job,
 * loads no zod for it.
 */
export interface TraceContext {
  traceparent: string;
  tracestate?: string;
}

/** A `traceparent` read into its parts. */
export interface TraceParent {
  traceId: string;
  spanId: string;
  sampled: boolean;
}

const traceparentForm = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * A `traceparent` header read strictly as the spec says: lowercase hex, version `ff` refused,
 * all-zero ids refused, version 00 with nothing after its flags. Undefined for anything else: the
 * spec has a receiver ignore an invalid header and start a trace of its own.
 */
export function parseTraceparent(text: string | undefined): TraceParent | undefined {
  if (text === undefined) return undefined;
  const match = traceparentForm.exec(text.trim());
  if (!match) return undefined;
  const [, version, traceId, spanId, flags, rest] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
    string?,
  ];
  if (version === "ff") return undefined;
  if (version === "00" && rest !== undefined) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) return undefined;
  return { traceId, spanId, sampled: (Number.parseInt(flags, 16) & 1) === 1 };
}

/** The `traceparent` of a span, version 00. */
export function formatTraceparent(parent: TraceParent): string {
  return `00-${parent.traceId}-${parent.spanId}-${parent.sampled ? "01" : "00"}`;
}

/**
 * A `tracestate` kept only when it reads as the spec's list (at most 32 `key=value` members, 512
 * characters); undefined otherwise, as the spec lets a receiver drop it.
 */
export function parseTracestate(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  const trimmed = text.trim();
  if (trimmed === "" || trimmed.length > 512) return undefined;
  const members = trimmed
    .split(",")
    .map((member) => member.trim())
    .filter((member) => member !== "");
  if (members.length > 32) return undefined;
  const member =
    /^[a-z0-9][a-z0-9_\-*/@]{0,255}=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;
  return members.every((each) => member.test(each)) ? members.join(",") : undefined;
}

/** The environment a traced step or agent turn gets: `TRACEPARENT`, and `TRACESTATE` when there is one. */
export function traceEnv(trace: TraceContext | undefined): Record<string, string> {
  if (!trace) return {};
  return { TRACEPARENT: trace.traceparent, ...(trace.tracestate ? { TRACESTATE: trace.tracestate } : {}) };
}
