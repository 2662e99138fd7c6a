/**
 * Every event type of the spine, as a plain list (no zod): what a client that listens by name
 * (an EventSource hears only the types it names) listens to. events.ts checks at compile time
 * that this list and its `RunEvent` union name the same types, so neither can gain one alone.
 */
export const runEventTypes = [
  "run.queued",
  "run.started",
  "run.finished",
  "step.started",
  "step.output",
  "step.retrying",
  "step.finished",
  "step.waiting",
  "approval.answered",
  "step.called",
  "approval.vote",
  "vars.exported",
  "artifact.created",
  "agent.message",
  "agent.tool_call",
  "agent.tool_result",
  "agent.usage",
  "bot.state",
  "notice",
] as const;
