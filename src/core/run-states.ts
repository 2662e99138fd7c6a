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

/**
 * What started a run: `manual` a person (the CLI, the web UI), `api` a program calling the API,
 * `schedule` a saved workflow's schedule, `webhook` a signed webhook, `rerun` the re-run of
 * another run, `forge` a code forge's event, `call` a `workflow.call` step of another run.
 */
export const runTriggers = ["manual", "api", "schedule", "webhook", "rerun", "forge", "call"] as const;
