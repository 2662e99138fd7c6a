import { describe, expect, it } from "vitest";
import { storeUnavailable } from "./connection-loss.js";

describe("storeUnavailable", () => {
  it("answers that the database is away without the driver's reason, which names its address; the cause keeps it", () => {
    const cause = new Error("connect ECONNREFUSED 10.0.3.7:5432");
    const error = storeUnavailable(cause, "unknown");
    expect(error.code).toBe("STORE_UNAVAILABLE");
    expect(error.message).not.toContain("10.0.3.7");
    expect(error.message).toContain("whether the change was stored is not known");
    expect(error.cause).toBe(cause);
  });
});
