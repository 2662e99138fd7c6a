/**
 * Every event type a run's stream names (`event:` lines; the schemas are src/core/events.ts).
 * An EventSource hears only the types it listens to, so every live page listens to all of them.
 */
export const runEventTypes = [
  "run.queued",
  "run.started",
  "run.finished",
  "step.started",
  "step.output",
  "step.retrying",
  "step.finished",
  "vars.exported",
  "artifact.created",
  "agent.message",
  "agent.tool_call",
  "agent.tool_result",
  "agent.usage",
  "bot.state",
  "notice",
] as const;
