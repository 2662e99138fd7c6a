import { describe, expect, it } from "vitest";
import { type OnlineRunner, waitReason } from "./queue-wait.js";

const runner = (over: Partial<OnlineRunner>): OnlineRunner => ({
  id: "r",
  group: "linux",
  labels: [],
  tenant_id: null,
  shared: false,
  isolation: "none",
  capacity: 1,
  held: 0,
  ...over,
});
const linuxDocker = { host: "worker", group: "linux", labels: ["docker"] };

describe("waitReason", () => {
  it("names tenant, group and labels, and says no runner of the tenant and none shared is online", () => {
    const online = [runner({ id: "platform" }), runner({ id: "globex", tenant_id: "globex" })];
    expect(waitReason(linuxDocker, "acme", online)).toBe(
      "waiting for a runner of tenant acme in group linux with labels [docker]: 2 runners online, none of tenant acme and none shared (start one with a runner token of tenant acme, or mark a runner --shared)",
    );
  });

  it("never says no runners online while one is connected", () => {
    const reason = waitReason({ host: "w", group: null, labels: [] }, "acme", [
      runner({ labels: ["docker"] }),
    ]);
    expect(reason).not.toContain("no runners online");
    expect(reason).toContain("1 runner online");
  });

  it("says when no runner is online at all, and how to start one", () => {
    expect(waitReason({ host: "w", group: null, labels: [] }, null, [])).toBe(
      "waiting for a runner outside any tenant in any group: no runners online (start one with a runner token made without --tenant)",
    );
  });

  it("a run outside every tenant waits for a runner outside every tenant, whatever tenants' runners are online", () => {
    const reason = waitReason({ host: "w", group: null, labels: [] }, null, [runner({ tenant_id: "acme" })]);
    expect(reason).toBe(
      "waiting for a runner outside any tenant in any group: 1 runner online, all of tenants, none outside any tenant (start one with a runner token made without --tenant)",
    );
  });

  it("counts a shared runner that isolates as one that may take a tenant's run, and says what it lacks", () => {
    const shared = runner({ shared: true, isolation: "sandbox" });
    expect(waitReason(linuxDocker, "acme", [shared])).toBe(
      "waiting for a runner of tenant acme in group linux with labels [docker]: 1 runner online, 1 of tenant acme or shared, none of them in group linux with labels [docker] (start one with --group linux --labels docker and a runner token of tenant acme)",
    );
    expect(waitReason(linuxDocker, "acme", [{ ...shared, labels: ["docker"] }])).toBeNull();
    // Marked shared but isolating nothing: it takes no tenant's run.
    expect(waitReason(linuxDocker, "acme", [runner({ shared: true, labels: ["docker"] })])).toContain(
      "none of tenant acme and none shared",
    );
  });

  it("says when every runner that may take it is busy, and nothing when one has room", () => {
    const busy = runner({ tenant_id: "acme", labels: ["docker"], held: 1 });
    expect(waitReason(linuxDocker, "acme", [busy])).toBe(
      "waiting for a runner of tenant acme in group linux with labels [docker]: 1 matching runner online, all busy",
    );
    expect(waitReason(linuxDocker, "acme", [{ ...busy, capacity: 2 }])).toBeNull();
  });
});
