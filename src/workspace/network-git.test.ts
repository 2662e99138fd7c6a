import { describe, expect, it } from "vitest";
import { MAX_RETRY_DELAY_MS, retryDelayMs } from "./network-git.js";

describe("retryDelayMs", () => {
  const policy = { gitRetries: 3, baseDelayMs: 1000 };

  it("doubles the delay each attempt, with jitter between half and all of it", () => {
    expect([1, 2, 3].map((attempt) => retryDelayMs(attempt, policy, () => 1))).toEqual([1000, 2000, 4000]);
    expect([1, 2, 3].map((attempt) => retryDelayMs(attempt, policy, () => 0))).toEqual([500, 1000, 2000]);
  });

  it("never waits longer than 30 s", () => {
    expect(retryDelayMs(20, policy, () => 1)).toBe(MAX_RETRY_DELAY_MS);
  });
});
