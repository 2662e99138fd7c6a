/** How a duration reads on the runs pages: a run's, a step's, a time axis's tick. */

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.round(ms))} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${s % 60} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

/**
 * A time axis's tick: as `formatDuration`, but a tick between whole seconds keeps its tenths (an
 * axis ticked every 500 ms read "1 s, 2 s, 2 s" from 1 s on, each rounded).
 */
export function formatTick(ms: number): string {
  if (ms < 1000 || ms >= 60_000 || ms % 1000 === 0) return formatDuration(ms);
  return `${Number((ms / 1000).toFixed(1))} s`;
}
