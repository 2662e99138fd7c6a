import { describe, expect, it } from "vitest";
import { RunyardError } from "../../core/errors.js";
import { LoginLimiter } from "./login-limiter.js";

function refusal(run: () => void): RunyardError | undefined {
  try {
    run();
    return undefined;
  } catch (error) {
    if (error instanceof RunyardError) return error;
    throw error;
  }
}

describe("LoginLimiter", () => {
  it("allows 5 failures per user a minute, then says how long to wait until the oldest is a minute old", () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter(undefined, () => now);
    for (let i = 0; i < 5; i++) {
      limiter.attempt("ana", "10.0.0.1");
      now += 1000;
    }
    const refused = refusal(() => limiter.attempt("ana", "10.0.0.2"));
    expect(refused?.code).toBe("RATE_LIMITED");
    expect(refused?.details).toEqual({ retry_after_seconds: 55 });
    now = 1_000_000 + 60_000;
    expect(refusal(() => limiter.attempt("ana", "10.0.0.3"))).toBeUndefined();
  });

  it("counts an attempt before its password is checked, so parallel guesses are held to the limit", () => {
    const limiter = new LoginLimiter();
    const outcomes = Array.from({ length: 8 }, () => refusal(() => limiter.attempt("ana", "10.0.0.1")));
    expect(outcomes.filter((o) => o === undefined)).toHaveLength(5);
  });

  it("a success clears the user's failures and does not count against the address", () => {
    const limiter = new LoginLimiter({ perUser: 2, perAddress: 3, windowMs: 60_000 });
    limiter.attempt("ana", "10.0.0.1");
    limiter.attempt("ana", "10.0.0.1");
    limiter.succeeded("ana", "10.0.0.1");
    limiter.attempt("ana", "10.0.0.1");
    limiter.attempt("bo", "10.0.0.1");
    expect(refusal(() => limiter.attempt("cy", "10.0.0.1"))?.message).toContain("from this address");
  });
});
