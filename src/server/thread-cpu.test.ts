import { describe, expect, it } from "vitest";
import { currentThreadId, threadCpuMs } from "./thread-cpu.js";

describe.runIf(process.platform === "linux")("a thread's CPU time", () => {
  it("grows with the thread's work and not with time spent waiting", async () => {
    const tid = currentThreadId()!;
    expect(tid).toBeGreaterThan(0);
    const before = threadCpuMs(tid)!;
    const started = performance.now();
    let sum = 0;
    while (performance.now() - started < 300) sum += Math.sqrt(sum + 1);
    const afterWork = threadCpuMs(tid)!;
    // A busy machine may give the loop less than all of its 300 ms, never none of it.
    expect(afterWork - before).toBeGreaterThanOrEqual(10);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(threadCpuMs(tid)! - afterWork).toBeLessThan(100);
    expect(sum).toBeGreaterThan(0);
  });

  it("is unknown for a thread that is not this process's", () => {
    expect(threadCpuMs(2 ** 30)).toBeUndefined();
  });
});
