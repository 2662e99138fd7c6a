import type { RunEvent } from "../core/events.js";
import type { EventBus } from "./event-bus.js";

/**
 * Reads something about a run until it says `done`, or `timeoutMs` passed, or the server stops
 * (`bus.stopped`); answers the last read. Woken by this replica's events of the run (those
 * `wakeOn` picks) and by other replicas' notices of stored events, with a slow poll in case a
 * notice is lost.
 */
export async function watchRun<T>(
  deps: { bus: EventBus },
  runId: string,
  timeoutMs: number,
  read: () => Promise<T>,
  done: (value: T) => boolean,
  wakeOn: (event: RunEvent) => boolean = () => true,
): Promise<T> {
  let wake: () => void = () => undefined;
  const unsubscribe = [
    deps.bus.subscribe(runId, (event) => wakeOn(event) && wake()),
    deps.bus.subscribeStored(runId, () => wake()),
  ];
  const deadline = Date.now() + timeoutMs;
  const stopped = deps.bus.stopped;
  const onStop = () => wake();
  stopped.addEventListener("abort", onStop);
  try {
    for (;;) {
      const value = await read();
      if (done(value) || Date.now() >= deadline || stopped.aborted) return value;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(1000, Math.max(1, deadline - Date.now())));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  } finally {
    stopped.removeEventListener("abort", onStop);
    for (const stop of unsubscribe) stop();
  }
}
