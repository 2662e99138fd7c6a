import { currentThreadId, threadCpuMs } from "../../src/server/thread-cpu.js";

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
const nominalMs = 25;

export function machinePace(): number {
  work();
  let fastest = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    work();
    fastest = Math.min(fastest, performance.now() - started);
  }
  return Math.max(1, fastest / nominalMs);
}

/**
 * Runs `work` and gives its result with the CPU time this thread spent on it. Unlike the clock it
 * does not grow while the thread waits for a core (two cores shared by four test files and what
 * they start), so a bound on it tells a linear algorithm from a quadratic one whatever the load;
 * `pacedMs` still stretches it for a slower core. /proc counts in 10 ms ticks; where there is no
 * per-thread figure, the clock.
 */
export function cpuTimed<T>(work: () => T): { value: T; cpuMs: number } {
  const tid = currentThreadId();
  const startedCpu = tid === undefined ? undefined : threadCpuMs(tid);
  const startedClock = performance.now();
  const value = work();
  const endedCpu = tid === undefined ? undefined : threadCpuMs(tid);
  if (startedCpu === undefined || endedCpu === undefined)
    return { value, cpuMs: performance.now() - startedClock };
  return { value, cpuMs: endedCpu - startedCpu };
}

/** `ms` stretched by `machinePace()`, for an assertion's bound. */
export function pacedMs(ms: number): number {
  return ms * machinePace();
}

/**
 * `ms` stretched by how much slower than usual this machine's core runs the same work, counted as
 * `cpuTimed` counts: for a bound on `cpuTimed`'s figure. Waiting for a core counts in neither, so
 * a busy machine stretches neither the bound nor the work, and a quadratic algorithm still misses
 * it there.
 */
export function cpuPacedMs(ms: number): number {
  work();
  // Four rounds, so /proc's 10 ms ticks are a tenth of the figure.
  const { cpuMs } = cpuTimed(() => {
    for (let i = 0; i < 4; i++) work();
  });
  return ms * Math.max(1, cpuMs / (4 * nominalMs));
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
