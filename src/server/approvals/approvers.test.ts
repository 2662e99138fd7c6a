import { describe, expect, it } from "vitest";
import type { Principal } from "../auth.js";
import { approverEntry } from "./approvers.js";

function person(over: Partial<Principal>): Principal {
  return {
    kind: "user",
    role: "member",
    tenant_id: "acme",
    user_id: "usr_1",
    username: "ann",
    token_id: null,
    session_id: "ses_1",
    session_expires_at: null,
    run_id: null,
    ...over,
  };
}

describe("who may answer an approval", () => {
  it("lets a listed user of the run's tenant answer", () => {
    expect(approverEntry(person({}), "acme", ["bob", "ann"])).toBe("ann");
  });

  it("refuses a user of the tenant who is not listed", () => {
    expect(approverEntry(person({ username: "carl" }), "acme", ["ann"])).toBeUndefined();
  });

  it("refuses a listed username of another tenant", () => {
    expect(approverEntry(person({ tenant_id: "other" }), "acme", ["ann"])).toBeUndefined();
  });

  it("reads role:admin as the admins of the run's tenant, not its members", () => {
    expect(approverEntry(person({ role: "admin", kind: "admin" }), "acme", ["role:admin"])).toBe(
      "role:admin",
    );
    expect(approverEntry(person({}), "acme", ["role:admin"])).toBeUndefined();
  });

  it("never lets a platform admin answer for a tenant's run", () => {
    const platform = person({
      kind: "admin",
      role: "admin",
      tenant_id: null,
      username: null,
      token_id: "tok_1",
    });
    expect(approverEntry(platform, "acme", ["role:admin", "role:member"])).toBeUndefined();
    expect(approverEntry(platform, null, ["role:admin"])).toBe("role:admin");
  });

  it("reads role:member as anyone of the run's tenant, a token without a user included", () => {
    const token = person({ username: null, user_id: null, token_id: "tok_2", session_id: null });
    expect(approverEntry(token, "acme", ["role:member"])).toBe("role:member");
    expect(approverEntry(token, "acme", ["ann"])).toBeUndefined();
  });

  it("refuses a stream token even of a listed user", () => {
    expect(approverEntry(person({ kind: "stream", run_id: "run_1" }), "acme", ["ann"])).toBeUndefined();
  });
});
