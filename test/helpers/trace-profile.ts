import type { ReceivedSpan } from "./otlp-receiver.js";

/**
 * A trace's spans as a speedscope profile (its "evented" file format), so a trace viewer can draw
 * the tree on a time axis: each span opens at its start and closes at its end, inside its parent.
 * Siblings that overlap are laid one after the other (the format is a stack), which the traces the
 * tests draw (steps in order) never need; a span is drawn as long as its children at least.
 */
export function speedscopeProfile(spans: ReceivedSpan[], name: string): object {
  const children = new Map<string, ReceivedSpan[]>();
  const ids = new Set(spans.map((span) => span.spanId));
  for (const span of spans) {
    const parent = ids.has(span.parentSpanId) ? span.parentSpanId : "";
    children.set(parent, [...(children.get(parent) ?? []), span]);
  }
  const roots = children.get("") ?? [];
  const zero = roots.reduce(
    // biome-ignore lint/complexity/useMathMinMax: the times are bigints, which Math.min does not take.
    (least, span) => (span.start < least ? span.start : least),
    roots[0]?.start ?? 0n,
  );
  const ms = (ns: bigint) => Number(ns - zero) / 1e6;
  const frames: { name: string }[] = [];
  const events: { type: "O" | "C"; frame: number; at: number }[] = [];
  const walk = (span: ReceivedSpan, from: number): number => {
    const frame = frames.push({ name: span.name }) - 1;
    const start = Math.max(ms(span.start), from);
    events.push({ type: "O", frame, at: start });
    let at = start;
    for (const child of [...(children.get(span.spanId) ?? [])].sort((a, b) => Number(a.start - b.start))) {
      at = walk(child, at);
    }
    const end = Math.max(ms(span.end), at);
    events.push({ type: "C", frame, at: end });
    return end;
  };
  let at = 0;
  for (const root of roots.sort((a, b) => Number(a.start - b.start))) at = walk(root, at);
  return {
    $schema: "https://www.speedscope.app/file-format-schema.json",
    name,
    exporter: "runyard tests",
    shared: { frames },
    profiles: [{ type: "evented", name, unit: "milliseconds", startValue: 0, endValue: at, events }],
  };
}
