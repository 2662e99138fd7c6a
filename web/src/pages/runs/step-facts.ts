import type { Schema } from "../../api.js";

type StepSummary = Schema<"StepSummary">;

/** What a step's box, row and bar say besides its state: when it ran, why it did not, where it was kept from. */
export interface StepFacts {
  /** When its first attempt started and when it ended (now while it runs), in ms since the epoch. */
  span?: { start: number; end: number };
  /** How long it took: its span, or the summary's own duration when it has no times. */
  durationMs?: number;
  /** Why it was skipped. */
  reason?: string;
  /** The run a retry kept its outcome from: it did not run in this one. */
  keptFrom?: string;
}

const going = new Set(["running", "retrying", "waiting"]);

/**
 * One step's facts from its summaries (one per host, or per matrix combination and host): its
 * span from the first start to the last end, its skip reason, the run all of them were kept from.
 */
export function stepFacts(
  summaries: Array<Partial<Omit<StepSummary, "status">> & { status: string }>,
  now: number,
): StepFacts {
  if (summaries.length === 0) return {};
  const facts: StepFacts = {};
  const kept = new Set(summaries.map((summary) => summary.kept_from));
  const [keptFrom] = kept;
  if (kept.size === 1 && keptFrom) facts.keptFrom = keptFrom;
  const reason = summaries.find((summary) => summary.status === "skipped" && summary.reason)?.reason;
  if (reason) facts.reason = reason;
  const starts = summaries.flatMap((summary) => (summary.started_at ? [Date.parse(summary.started_at)] : []));
  if (starts.length > 0 && !facts.keptFrom) {
    const ends = summaries.map((summary) =>
      going.has(summary.status) || !summary.ended_at ? now : Date.parse(summary.ended_at),
    );
    const span = { start: Math.min(...starts), end: Math.max(...ends) };
    facts.span = span;
    facts.durationMs = Math.max(0, span.end - span.start);
    return facts;
  }
  const durations = summaries.flatMap((summary) =>
    summary.duration_ms !== undefined && summary.status !== "skipped" ? [summary.duration_ms] : [],
  );
  if (durations.length > 0) facts.durationMs = Math.max(...durations);
  return facts;
}

/**
 * A run id where a box has little room: its prefix and random end (the middle is its time, the same
 * for runs close together); the whole id is in the link's title.
 */
export function shortRunId(id: string): string {
  const cut = id.indexOf("_");
  return id.length > 16 && cut > 0 ? `${id.slice(0, cut + 1)}…${id.slice(-6)}` : id;
}
