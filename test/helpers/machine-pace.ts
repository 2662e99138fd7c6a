/**
 * How many times slower than usual this machine runs plain JavaScript right now: a fixed piece of
 * work (arithmetic, strings, JSON, a regular expression) timed a few times, the fastest against
 * what it takes on a quiet 2-core machine of ours (25 ms). Never under 1.
 *
 * For the few tests that bound a pure computation's time to tell a linear algorithm from a
 * quadratic one (the quadratic one takes minutes where the bound allows a second): their bound is
 * `ms * machinePace()`, so a host five times slower, or two cores shared by twenty processes,
 * stretches the bound as it stretches the work, and a quadratic algorithm still misses it.
 */
export function machinePace(): number {
  const nominalMs = 25;
  work();
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    work();
    fastest = Math.min(fastest, performance.now() - started);
  }
  return Math.max(1, fastest / nominalMs);
}

/** `ms` stretched by `machinePace()`, for an assertion's bound. */
export function pacedMs(ms: number): number {
  return ms * machinePace();
}

function work(): number {
  let sum = 0;
  const parts: string[] = [];
  for (let i = 0; i < 1_000_000; i++) {
    sum += (i * 7) % 13;
    if (i % 10 === 0) parts.push(String(i));
  }
  const text = JSON.stringify(parts);
  return sum + (JSON.parse(text) as string[]).length + text.replace(/1/g, "x").length;
}
