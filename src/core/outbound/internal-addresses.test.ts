import { describe, expect, it } from "vitest";
import { internalCidrs, internalHostOf, internalRangeOf } from "./internal-addresses.js";

/** What a URL's host is, as the server sees it after the URL parser read it. */
function hostKind(url: string): string | undefined {
  return internalHostOf(new URL(url).hostname.replace(/^\[|\]$/g, ""));
}

describe("internalRangeOf", () => {
  it("names the internal IPv4 ranges", () => {
    expect(internalRangeOf("127.0.0.1")).toBe("loopback");
    expect(internalRangeOf("127.255.0.9")).toBe("loopback");
    expect(internalRangeOf("10.1.2.3")).toBe("private");
    expect(internalRangeOf("172.16.0.1")).toBe("private");
    expect(internalRangeOf("172.31.255.255")).toBe("private");
    expect(internalRangeOf("192.168.1.1")).toBe("private");
    expect(internalRangeOf("169.254.169.254")).toBe("link-local");
    expect(internalRangeOf("0.0.0.0")).toBe("unspecified");
    expect(internalRangeOf("100.64.0.1")).toBe("shared (carrier-grade NAT)");
    expect(internalRangeOf("255.255.255.255")).toBe("reserved");
    expect(internalRangeOf("224.0.0.1")).toBe("multicast");
  });

  it("leaves public IPv4 addresses and their neighbours of private ranges alone", () => {
    for (const address of ["8.8.8.8", "1.1.1.1", "172.15.255.255", "172.32.0.0", "192.169.0.1", "11.0.0.1"]) {
      expect(internalRangeOf(address), address).toBeUndefined();
    }
  });

  it("names the internal IPv6 ranges", () => {
    expect(internalRangeOf("::1")).toBe("loopback");
    expect(internalRangeOf("[::1]")).toBe("loopback");
    expect(internalRangeOf("::")).toBe("unspecified");
    expect(internalRangeOf("fe80::1")).toBe("link-local");
    expect(internalRangeOf("febf::1")).toBe("link-local");
    expect(internalRangeOf("fc00::1")).toBe("private (unique local)");
    expect(internalRangeOf("fd12:3456::1")).toBe("private (unique local)");
    expect(internalRangeOf("ff02::1")).toBe("multicast");
    expect(internalRangeOf("2606:4700::1111")).toBeUndefined();
  });

  it("judges IPv6 forms that carry an IPv4 address by that address", () => {
    expect(internalRangeOf("::ffff:127.0.0.1")).toBe("loopback");
    expect(internalRangeOf("::ffff:7f00:1")).toBe("loopback");
    expect(internalRangeOf("::ffff:a9fe:a9fe")).toBe("link-local");
    expect(internalRangeOf("0:0:0:0:0:ffff:10.0.0.1")).toBe("private");
    expect(internalRangeOf("::127.0.0.1")).toBe("loopback");
    expect(internalRangeOf("64:ff9b::192.168.0.1")).toBe("private");
    expect(internalRangeOf("2002:7f00:1::")).toBe("loopback");
    expect(internalRangeOf("::ffff:8.8.8.8")).toBeUndefined();
    expect(internalRangeOf("64:ff9b::8.8.8.8")).toBeUndefined();
  });

  it("holds RFC 8215's local-use NAT64 prefix internal, whatever IPv4 address it carries: its translator is the local network's", () => {
    expect(internalRangeOf("64:ff9b:1::a00:5")).toBe("local-use NAT64");
    expect(internalRangeOf("64:ff9b:1::808:808")).toBe("local-use NAT64");
    expect(internalCidrs().ipv6).toContain("64:ff9b:1::/48");
  });

  it("knows nothing of names", () => {
    expect(internalRangeOf("example.com")).toBeUndefined();
    expect(internalRangeOf("localhost")).toBeUndefined();
  });
});

describe("internalHostOf, on a URL's host", () => {
  it("sees 127.0.0.1 behind its decimal, hex, octal and short forms", () => {
    expect(hostKind("http://2130706433/")).toBe("loopback");
    expect(hostKind("http://0x7f.1/")).toBe("loopback");
    expect(hostKind("http://0x7f000001/")).toBe("loopback");
    expect(hostKind("http://017700000001/")).toBe("loopback");
    expect(hostKind("http://127.1/")).toBe("loopback");
    expect(hostKind("http://0/")).toBe("unspecified");
  });

  it("sees bracketed IPv6 and v4-mapped IPv6 hosts", () => {
    expect(hostKind("http://[::1]:7072/")).toBe("loopback");
    expect(hostKind("http://[::ffff:127.0.0.1]/")).toBe("loopback");
    expect(hostKind("http://[::ffff:169.254.169.254]/latest")).toBe("link-local");
    expect(hostKind("http://[fd00::5]/")).toBe("private (unique local)");
  });

  it("takes localhost and names under it as loopback, in any case and with a trailing dot", () => {
    expect(hostKind("http://localhost:8080/")).toBe("loopback");
    expect(hostKind("http://LOCALHOST./")).toBe("loopback");
    expect(hostKind("http://api.localhost/")).toBe("loopback");
  });

  it("leaves public addresses and other names to the connect-time check", () => {
    expect(hostKind("https://hooks.example.com/x")).toBeUndefined();
    expect(hostKind("http://8.8.8.8/")).toBeUndefined();
    expect(hostKind("http://localhost.example.com/")).toBeUndefined();
  });
});
