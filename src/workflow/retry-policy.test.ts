import { describe, expect, test } from "vitest";
import type { RetryPolicy } from "./model.js";
import { failureReason, retryDelayMs, retryPlan, retryPolicyOf } from "./retry-policy.js";

const policy = (over: Partial<RetryPolicy>): RetryPolicy => ({
  attempts: 5,
  backoff: "exponential",
  delaySeconds: 1,
  on: ["error", "timeout", "runner_lost"],
  ...over,
});

describe("retry policy", () => {
  test("exponential back-off doubles the delay up to max_delay; fixed keeps it", () => {
    const growing = policy({ maxDelaySeconds: 3 });
    expect([1, 2, 3, 4].map((attempt) => retryDelayMs(growing, attempt))).toEqual([1000, 2000, 3000, 3000]);
    expect(
      [1, 2, 3].map((attempt) => retryDelayMs(policy({ backoff: "fixed", delaySeconds: 0.5 }), attempt)),
    ).toEqual([500, 500, 500]);
  });

  test("names a failure error, timeout or runner_lost; success and cancel are none", () => {
    expect(failureReason("failed", { code: "STEP_FAILED", message: "" })).toBe("error");
    expect(failureReason("timeout", { code: "TIMEOUT", message: "" })).toBe("timeout");
    expect(failureReason("failed", { code: "RUNNER_LOST", message: "" })).toBe("runner_lost");
    expect(failureReason("success", { code: "EXPECT_VARS_MISSING", message: "" })).toBe("error");
    expect(failureReason("success", undefined)).toBeUndefined();
    expect(failureReason("canceled", undefined)).toBeUndefined();
  });

  test("retries only the failures and exit codes listed, and says why not otherwise", () => {
    const narrow = policy({ on: ["error"], onExitCodes: [75] });
    expect(retryPlan(narrow, 1, "error", 75)).toEqual({ retry: true, delayMs: 1000 });
    expect(retryPlan(narrow, 1, "error", 1)).toEqual({
      retry: false,
      why: "not retried: exit code 1 is not in retry.on_exit_codes (75)",
    });
    expect(retryPlan(narrow, 1, "timeout", null)).toEqual({
      retry: false,
      why: "not retried: timeout is not in retry.on (error)",
    });
    expect(retryPlan(narrow, 5, "error", 75)).toEqual({ retry: false });
  });

  test("the short form is exponential from retry_delay_seconds, every failure retried", () => {
    expect(retryPolicyOf({ retryCount: 2, retryDelaySeconds: 0.2 })).toEqual({
      attempts: 3,
      backoff: "exponential",
      delaySeconds: 0.2,
      on: ["error", "timeout", "runner_lost"],
    });
  });
});
