import { describe, expect, it } from "vitest";
import { tenantPrincipal } from "../auth.js";
import { runConfinement } from "./run-confinement.js";

const member = tenantPrincipal(null);
const platformAdmin = { ...member, kind: "admin" as const, role: "admin" as const };
const tenantAdmin = { ...platformAdmin, tenant_id: "acme" };

describe("a run's confinement, decided once at submit", () => {
  it("is unconfined only for a platform admin's run; a member's, a tenant admin's and nobody's are confined", () => {
    expect(runConfinement({ submitter: { principal: platformAdmin } })).toBe("unconfined");
    expect(runConfinement({ submitter: { principal: member } })).toBe("confined");
    expect(runConfinement({ submitter: { principal: tenantAdmin } })).toBe("confined");
    expect(runConfinement({ submitter: { principal: undefined } })).toBe("confined");
    expect(runConfinement({})).toBe("confined");
  });

  it("reads a trigger's owner as they are now: a platform admin's hook or schedule is unconfined, a removed owner's not", () => {
    expect(runConfinement({ submitter: { actor: { role: "admin", tenant_id: null, user_id: "u1" } } })).toBe(
      "unconfined",
    );
    expect(
      runConfinement({ submitter: { actor: { role: "admin", tenant_id: "acme", user_id: "u2" } } }),
    ).toBe("confined");
    expect(runConfinement({ submitter: { actor: undefined } })).toBe("confined");
  });

  it("is the lesser of the submitter's and what the run stems from: the earlier run, the saved version", () => {
    const admin = { principal: platformAdmin };
    expect(runConfinement({ submitter: admin, earlier: "confined" })).toBe("confined");
    expect(runConfinement({ submitter: admin, earlier: "unconfined" })).toBe("unconfined");
    expect(runConfinement({ submitter: admin, saved: { unrestricted: false } })).toBe("confined");
    expect(runConfinement({ submitter: admin, saved: { unrestricted: true } })).toBe("unconfined");
    expect(runConfinement({ submitter: { principal: member }, earlier: "unconfined" })).toBe("confined");
  });

  it("gives a call's child run at most its parent's, and the called version's author's", () => {
    expect(runConfinement({ earlier: "unconfined", saved: { unrestricted: true } })).toBe("unconfined");
    expect(runConfinement({ earlier: "unconfined", saved: { unrestricted: false } })).toBe("confined");
    expect(runConfinement({ earlier: "confined", saved: { unrestricted: true } })).toBe("confined");
  });
});
