import { createHash } from "node:crypto";

/**
 * Span and trace ids derived from what a span stands for, not drawn at random: the server names a
 * step attempt's span in its job (`TRACEPARENT`) before the attempt starts, and exports the span
 * under that very id when the attempt ends, without keeping anything in between. A run's trace
 * id is derived from its id unless a caller's `traceparent` or a calling run gives it one.
 */
function hex(parts: readonly (string | number)[], length: number): string {
  const digest = createHash("sha256").update(parts.join("\u0000")).digest("hex").slice(0, length);
  // All zeros is the spec's invalid id; one chance in 2^64, but never send it.
  return /^0+$/.test(digest) ? `${digest.slice(0, -1)}1` : digest;
}

export function runTraceId(runId: string): string {
  return hex(["trace", runId], 32);
}

export const spanIds = {
  submit: (runId: string) => hex(["submit", runId], 16),
  run: (runId: string) => hex(["run", runId], 16),
  attempt: (runId: string, step: string, host: string, attempt: number) =>
    hex(["attempt", runId, step, host, attempt], 16),
  queueWait: (runId: string, step: string, host: string, attempt: number) =>
    hex(["queue", runId, step, host, attempt], 16),
  setup: (runId: string, step: string, host: string, attempt: number) =>
    hex(["setup", runId, step, host, attempt], 16),
  command: (runId: string, step: string, host: string, attempt: number) =>
    hex(["command", runId, step, host, attempt], 16),
  approval: (runId: string, step: string, host: string) => hex(["approval", runId, step, host], 16),
  agentTurn: (runId: string, agent: string) => hex(["turn", runId, agent], 16),
  modelCall: (runId: string, agent: string, seq: number) => hex(["model", runId, agent, seq], 16),
  bot: (runId: string, seq: number) => hex(["bot", runId, seq], 16),
};
