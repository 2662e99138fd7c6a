import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { hostResolvers, plainTcpRules } from "./sandbox-tcp-rules.js";

describe("a tenant namespace's nftables rules", () => {
  const rules = plainTcpRules(
    ["10.20.0.0/16:5432", "[fd00::/8]:443-450", "db.internal:5432", "192.168.1.7"],
    ["127.0.0.1", "203.0.113.7", "2001:db8::7"],
  );

  it("lets in the ranges the operator lists, with their ports, and leaves names to the proxy", () => {
    expect(rules).toContain("ip daddr 10.20.0.0/16 meta l4proto { tcp, udp } th dport 5432 accept");
    expect(rules).toContain("ip6 daddr fd00::/8 meta l4proto { tcp, udp } th dport 443-450 accept");
    expect(rules).toContain("ip daddr 192.168.1.7 accept");
    expect(rules).not.toContain("db.internal");
  });

  it("refuses every internal range, in the IPv6 forms that carry one too, and the runner's own public addresses", () => {
    for (const range of ["10.0.0.0/8", "169.254.0.0/16", "127.0.0.0/8", "203.0.113.7", "2001:db8::7"])
      expect(rules).toContain(range);
    for (const carried of ["::ffff:a00:0/104", "64:ff9b::a9fe:0/112", "2002:a00:0::/24", "fc00::/7"])
      expect(rules).toContain(carried);
    // Loopback inside is the sandbox's own; the accepts come before the refusals.
    expect(rules.indexOf('oifname "lo" accept')).toBeLessThan(rules.indexOf("10.20.0.0/16"));
    expect(rules.indexOf("10.20.0.0/16")).toBeLessThan(rules.indexOf("reject"));
  });

  it("lets DNS through to the runner's name servers only, on port 53, before the refusals", () => {
    const withDns = plainTcpRules([], [], ["10.255.255.53", "fd00::53"]);
    expect(withDns).toContain("ip daddr 10.255.255.53 meta l4proto { tcp, udp } th dport 53 accept");
    expect(withDns).toContain("ip6 daddr fd00::53 meta l4proto { tcp, udp } th dport 53 accept");
    expect(withDns.indexOf("dport 53 accept")).toBeLessThan(withDns.indexOf("reject"));
  });
});

describe("the runner's name servers a sandbox can reach", () => {
  it("are resolv.conf's, leaving out a loopback stub (the sandbox's loopback is its own)", () => {
    const file = join(mkdtempSync(join(tmpdir(), "resolv-")), "resolv.conf");
    writeFileSync(
      file,
      "# stub\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n  nameserver fe80::1%eth0\nsearch lan\n",
    );
    expect(hostResolvers(file)).toEqual(["10.0.0.2", "fe80::1"]);
    expect(hostResolvers(join(file, "missing"))).toEqual([]);
  });
});
