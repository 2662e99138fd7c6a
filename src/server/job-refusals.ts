import { errorInfo } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import type { JobRecord, JobRefusal } from "../store/index.js";

/** Refusals after which a job fails with JOB_REFUSED instead of being offered again. */
export const maxJobRefusals = 3;
/** The back-off after a job's first refusal; it doubles with each refusal after. */
const refusalBackoffMs = 1000;

/** How long a job refused `times` times waits before it is offered again (1 s, 2 s, ...). */
export function refusalBackoff(times: number): number {
  return refusalBackoffMs * 2 ** (times - 1);
}

/**
 * JOB_REFUSED for a job every offer of which was refused: who refused it and why, and what kind
 * of runner would take it.
 */
export function refusedError(record: JobRecord, refusals: readonly JobRefusal[]): ErrorInfo {
  const said = new Map<string, number>();
  for (const { runner_id, reason } of refusals) {
    const line = `runner ${runner_id}: ${reason}`;
    said.set(line, (said.get(line) ?? 0) + 1);
  }
  const who = [...said].map(([line, times]) => (times > 1 ? `${line} (${times} times)` : line));
  const { group, labels } = record.requirements;
  const wanted = labels.filter((label) => !label.startsWith("runner:"));
  const serves = [
    `a runner that runs ${record.type} jobs`,
    group ? `in group ${group}` : "",
    wanted.length > 0 ? `with labels [${wanted.join(",")}]` : "",
  ]
    .filter(Boolean)
    .join(" ");
  return errorInfo(
    "JOB_REFUSED",
    `the ${record.type} job was refused ${refusals.length} times and given up: ${who.join("; ")}`,
    `Start ${serves} that has what the job needs (a reachable Docker engine for bots and \`executor: docker\` hosts, the named agent installed for agent tasks), or change the job's group and labels to match one that does; \`runyard runners\` shows each runner's labels.`,
  );
}
