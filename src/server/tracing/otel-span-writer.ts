import * as api from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import * as resources from "@opentelemetry/resources";
import * as sdk from "@opentelemetry/sdk-trace-base";
import type { SpanWriter } from "./span-writer.js";
import type { TracingSettings } from "./tracing-settings.js";

/**
 * The writer over the OpenTelemetry SDK: a tracer whose ids are chosen by the caller, a batch processor, the OTLP HTTP exporter.
 * The batch processor drops spans when its queue is full or the collector is away: a run never
 * waits on the collector.
 */
export function otelSpanWriter(settings: TracingSettings): SpanWriter {
  const chosen = { traceId: "", spanId: "" };
  const ids = {
    generateTraceId: () => chosen.traceId,
    generateSpanId: () => chosen.spanId,
  };
  const ratio = new sdk.TraceIdRatioBasedSampler(settings.sampler.ratio);
  const root: sdk.Sampler = {
    always_on: new sdk.AlwaysOnSampler(),
    always_off: new sdk.AlwaysOffSampler(),
    traceidratio: ratio,
    parentbased_always_on: new sdk.AlwaysOnSampler(),
    parentbased_always_off: new sdk.AlwaysOffSampler(),
    parentbased_traceidratio: ratio,
  }[settings.sampler.name];
  const followsParent = settings.sampler.name.startsWith("parentbased_");
  const exporter = new OTLPTraceExporter({ url: settings.tracesUrl, headers: settings.headers });
  const processor = new sdk.BatchSpanProcessor(exporter, { scheduledDelayMillis: 500 });
  const provider = new sdk.BasicTracerProvider({
    resource: resources.resourceFromAttributes({ "service.name": settings.serviceName }),
    idGenerator: ids,
    // The decision is made here, once a trace (`sampled`); each span carries it as its parent's flag.
    sampler: new sdk.ParentBasedSampler({ root: new sdk.AlwaysOnSampler() }),
    spanProcessors: [processor],
  });
  const tracer = provider.getTracer("runyard");
  const kinds = { server: api.SpanKind.SERVER, internal: api.SpanKind.INTERNAL, client: api.SpanKind.CLIENT };
  const context = (traceId: string, spanId: string, sampled: boolean, isRemote: boolean) => ({
    traceId,
    spanId,
    traceFlags: sampled ? api.TraceFlags.SAMPLED : api.TraceFlags.NONE,
    isRemote,
  });
  return {
    sampled(traceId, parent) {
      if (parent && followsParent) return parent.sampled;
      const decision = root.shouldSample(api.ROOT_CONTEXT, traceId, "run", api.SpanKind.INTERNAL, {}, []);
      return decision.decision === sdk.SamplingDecision.RECORD_AND_SAMPLED;
    },
    write(span, sampled) {
      if (!sampled) return;
      const parent =
        span.parentSpanId !== undefined
          ? api.trace.setSpanContext(
              api.ROOT_CONTEXT,
              context(span.traceId, span.parentSpanId, true, span.remoteParent === true),
            )
          : api.ROOT_CONTEXT;
      // The tracer asks the id generator synchronously within startSpan: these are its ids.
      chosen.traceId = span.traceId;
      chosen.spanId = span.spanId;
      const written = tracer.startSpan(
        span.name,
        {
          kind: kinds[span.kind ?? "internal"],
          startTime: span.start,
          attributes: span.attributes,
          links: (span.links ?? []).map((link) => ({
            context: context(link.traceId, link.spanId, true, false),
            ...(link.attributes ? { attributes: link.attributes } : {}),
          })),
        },
        parent,
      );
      for (const event of span.events ?? []) written.addEvent(event.name, event.attributes ?? {}, event.time);
      if (span.error !== undefined)
        written.setStatus({ code: api.SpanStatusCode.ERROR, message: span.error });
      written.end(new Date(Math.max(span.end.getTime(), span.start.getTime())));
    },
    flush: () => provider.forceFlush(),
    close: () => provider.shutdown(),
  };
}
