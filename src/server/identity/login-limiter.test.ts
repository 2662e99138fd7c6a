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

const limits = { perUserAddress: 2, perUser: 4, perAddress: 6, windowMs: 60_000, slowdownMs: 1000 };

describe("LoginLimiter", () => {
  it("allows 5 failures a minute for a user from one address, then says how long to wait until the oldest is a minute old", () => {
    let now = 1_000_000;
    const limiter = new LoginLimiter(undefined, () => now);
    for (let i = 0; i < 5; i++) {
      limiter.attempt("ana", "10.0.0.1");
      now += 1000;
    }
    const refused = refusal(() => limiter.attempt("ana", "10.0.0.1"));
    expect(refused?.code).toBe("RATE_LIMITED");
    expect(refused?.details).toEqual({ retry_after_seconds: 55 });
    now = 1_000_000 + 60_000;
    expect(refusal(() => limiter.attempt("ana", "10.0.0.1"))).toBeUndefined();
  });

  it("counts an attempt before its password is checked, so parallel guesses are held to the limit", () => {
    const limiter = new LoginLimiter();
    const outcomes = Array.from({ length: 8 }, () => refusal(() => limiter.attempt("ana", "10.0.0.1")));
    expect(outcomes.filter((o) => o === undefined)).toHaveLength(5);
  });

  it("never refuses the same user from another address, nor another user from the locked address", () => {
    const limiter = new LoginLimiter(limits);
    limiter.attempt("ana", "10.0.0.1");
    limiter.attempt("ana", "10.0.0.1");
    expect(refusal(() => limiter.attempt("ana", "10.0.0.1"))?.code).toBe("RATE_LIMITED");
    expect(refusal(() => limiter.attempt("ana", "10.0.0.2"))).toBeUndefined();
    expect(refusal(() => limiter.attempt("bo", "10.0.0.1"))).toBeUndefined();
  });

  it("slows down, without refusing, a user guessed from many addresses and an address guessing many users", () => {
    const limiter = new LoginLimiter(limits);
    for (const address of ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"])
      expect(limiter.attempt("ana", address)).toBe(0);
    expect(limiter.attempt("ana", "10.0.0.5")).toBe(1000);
    for (const user of ["bo", "cy", "di", "ed", "fay", "gus"]) limiter.attempt(user, "10.0.0.9");
    expect(limiter.attempt("hal", "10.0.0.9")).toBe(1000);
    expect(limiter.attempt("ivy", "10.0.0.8")).toBe(0);
  });

  it("a success clears the pair's failures and takes itself off the user's and the address's counts", () => {
    const limiter = new LoginLimiter(limits);
    limiter.attempt("ana", "10.0.0.1");
    limiter.attempt("ana", "10.0.0.1");
    limiter.succeeded("ana", "10.0.0.1");
    expect(refusal(() => limiter.attempt("ana", "10.0.0.1"))).toBeUndefined();
    limiter.succeeded("ana", "10.0.0.1");
    for (const user of ["bo", "cy", "di", "ed", "fay"]) limiter.attempt(user, "10.0.0.1");
    // ana's first failure (the second was right) and five others': the address's ceiling of 6.
    expect(limiter.attempt("gus", "10.0.0.1")).toBe(1000);
  });
});
