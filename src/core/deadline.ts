/**
 * A signal that aborts after `ms` (a `TimeoutError`, as `AbortSignal.timeout` gives) or as soon
 * as any of `also` aborts. Call `clear()` once the work is done.
 *
 * Node 20's `AbortSignal.any([AbortSignal.timeout(ms), other])` may never time out: the timeout
 * signal is held only weakly, so a garbage collection before it fires loses it (nodejs/node#57736)
 * and a receiver that never answers holds the request forever. Here the timer holds the
 * controller, so the deadline stands whatever the collector does.
 */
export function deadline(
  ms: number,
  ...also: (AbortSignal | undefined)[]
): { signal: AbortSignal; clear(): void } {
  const controller = new AbortController();
  const timer = setTimeout(
    () => controller.abort(new DOMException("The operation was aborted due to timeout", "TimeoutError")),
    ms,
  );
  // A pending deadline does not keep a stopping process alive.
  timer.unref();
  const listeners = new Map<AbortSignal, () => void>();
  const clear = () => {
    clearTimeout(timer);
    for (const [source, listener] of listeners) source.removeEventListener("abort", listener);
    listeners.clear();
  };
  for (const source of also) {
    if (!source) continue;
    if (source.aborted) {
      controller.abort(source.reason);
      clear();
      break;
    }
    const listener = () => controller.abort(source.reason);
    source.addEventListener("abort", listener, { once: true });
    listeners.set(source, listener);
  }
  return { signal: controller.signal, clear };
}
