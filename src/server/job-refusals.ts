import { errorInfo } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import type { JobRecord, JobRefusal, Store } from "../store/index.js";

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

/**
 * Offers the queue's work again, to every replica's runners (`dispatch`: the fleet's word too),
 * once a refused job's back-off is over. Nothing else says it: a runner whose last claim found
 * nothing claims again only when told the queue changed (RunnerSession.fill), on another replica
 * at its fleet sweep.
 */
export class BackoffOffers {
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  constructor(
    private readonly store: Pick<Store, "jobs">,
    private readonly dispatch: () => void,
  ) {}

  /** Offers the queue again at `notBefore`; set again if it fires early (a timer counts from the loop's last tick). */
  at(notBefore: number, then?: () => void): void {
    // A store read that ends after the stop (`afterRestart`) arms nothing.
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        this.timers.delete(timer);
        if (Date.now() < notBefore) return this.at(notBefore, then);
        this.dispatch();
        then?.();
      },
      // setTimeout fires after 1 ms past 2^31 - 1 ms (24.8 days): a back-off that far ahead (a
      // clock set back since the refusal) would set it again every millisecond.
      Math.min(Math.max(0, notBefore - Date.now()) + 20, 2 ** 31 - 1),
    );
    timer.unref();
    this.timers.add(timer);
  }

  /**
   * The back-offs a stopped server's timers would have ended: the first queued job's still waiting
   * one is offered at its end, then the next. At start: a server alone has no sweep.
   */
  async afterRestart(): Promise<void> {
    const next = await this.store.jobs.nextBackoffEnd();
    if (next) this.at(next.getTime(), () => void this.afterRestart().catch(() => undefined));
  }

  stop(): void {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
