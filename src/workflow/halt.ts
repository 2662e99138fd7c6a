/**
 * A server that stops leaves the engines of its runs where they are: their runs stay as stored
 * and go on from their events at the next start. Aborting a run's `halt` signal says so; what an
 * engine then waits on never settles and holds no timer, so the stopped process can exit (a
 * cancel is another thing: it ends the run).
 */

/** What a halted engine waits on: it never settles, and keeps nothing open. */
export const halted: Promise<never> = new Promise<never>(() => undefined);

/**
 * Waits `ms`, or less when `signal` aborts (the run is canceled). Once `halt` aborts, before or
 * during the wait, its timer is cleared and it never settles.
 */
export function pause(ms: number, signal?: AbortSignal, halt?: AbortSignal): Promise<void> {
  if (halt?.aborted) return halted;
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const end = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      halt?.removeEventListener("abort", end);
    };
    const done = (): void => {
      end();
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
    halt?.addEventListener("abort", end, { once: true });
  });
}
