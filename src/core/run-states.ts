/**
 * What a run is and where it stands, as plain lists: the event schemas (events.ts) build their
 * enums from these, and the web UI imports them without pulling zod into the browser's bundle.
 */
export const runKinds = ["workflow", "agent", "bot"] as const;

export const runStatuses = [
  "queued",
  "running",
  "success",
  "failed",
  "canceled",
  "timeout",
  "interrupted",
] as const;

/** The statuses a run ends in: nothing follows them. */
export const finalRunStatuses: readonly (typeof runStatuses)[number][] = [
  "success",
  "failed",
  "canceled",
  "timeout",
  "interrupted",
];
