/**
 * A workflow's top-level `timeout:`: one signal that aborts when the run's caller cancels it or
 * when its time is up, whichever comes first. A run resumed after a restart keeps the time it
 * had when it first started.
 */
import type { RunEvent } from "../core/events.js";
import type { Workflow } from "./model.js";

export interface RunDeadline {
  signal: AbortSignal;
  /** Why the run was stopped, once its timeout passed; undefined until then. */
  readonly passed: string | undefined;
  clear(): void;
}

export function runDeadline(
  workflow: Pick<Workflow, "runTimeoutSeconds">,
  resume: readonly RunEvent[] | undefined,
  outer: AbortSignal | undefined,
  now: number,
): RunDeadline {
  const controller = new AbortController();
  const cancel = (): void => controller.abort(outer?.reason);
  if (outer?.aborted) cancel();
  else outer?.addEventListener("abort", cancel, { once: true });
  let passed: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const seconds = workflow.runTimeoutSeconds;
  if (seconds !== undefined) {
    const began = resume?.find((event) => event.type === "run.started") ?? resume?.[0];
    const since = began ? Date.parse(began.ts) : now;
    const left = Math.max(0, since + seconds * 1000 - now);
    timer = setTimeout(() => {
      if (controller.signal.aborted) return;
      passed = `the run passed its timeout of ${seconds} s; its steps were stopped`;
      controller.abort(new Error(passed));
    }, left);
  }
  return {
    signal: controller.signal,
    get passed() {
      return passed;
    },
    clear() {
      if (timer) clearTimeout(timer);
      outer?.removeEventListener("abort", cancel);
    },
  };
}
