/** A span as the run's events tell it, written once it has ended: every id and time given. */
export interface FinishedSpan {
  traceId: string;
  spanId: string;
  /** Absent: a root span. */
  parentSpanId?: string;
  /** The parent is the caller's (an incoming `traceparent`), not one of runyard's spans. */
  remoteParent?: boolean;
  name: string;
  kind?: "server" | "internal" | "client";
  start: Date;
  end: Date;
  attributes: Record<string, string | number | boolean>;
  links?: { traceId: string; spanId: string; attributes?: Record<string, string> }[];
  events?: { name: string; time: Date; attributes?: Record<string, string | number | boolean> }[];
  error?: string;
}

/** Where finished spans go: the SDK's batch processor and OTLP exporter (otel-span-writer.ts). */
export interface SpanWriter {
  /** Whether the trace is kept by the sampler (a run's steps follow its run's decision). */
  sampled(traceId: string, parent?: { sampled: boolean }): boolean;
  write(span: FinishedSpan, sampled: boolean): void;
  /** Sends what the batch holds now. */
  flush(): Promise<void>;
  close(): Promise<void>;
}
