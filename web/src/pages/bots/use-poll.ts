import { useCallback, useEffect, useState } from "react";

/** `load` now and every `everyMs` while mounted; `reload` for right after a change. */
export function usePoll<T>(load: () => Promise<T>, everyMs: number) {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  // biome-ignore lint/correctness/useExhaustiveDependencies: `load` is fixed per page; tick reloads
  useEffect(() => {
    let alive = true;
    const run = () =>
      load().then(
        (value) => {
          if (!alive) return;
          setData(value);
          setError(null);
        },
        (caught) => alive && setError(caught),
      );
    void run();
    const timer = setInterval(run, everyMs);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, [tick, everyMs]);
  return { data, error, reload };
}
