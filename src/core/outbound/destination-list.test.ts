import { describe, expect, it } from "vitest";
import { DestinationList, destinationEntryProblem } from "./destination-list.js";

const at = (hostname: string, port: number, address = hostname) => ({ hostname, port, address });

describe("destination list entries", () => {
  it("reads names, wildcards, addresses, ranges and ports", () => {
    for (const entry of [
      "agents.example.com",
      "agents.example.com:7072",
      "*.corp.example.com",
      "*.corp.example.com:8000-8999",
      "localhost",
      "10.1.2.3",
      "10.0.0.0/8:443",
      "[::1]",
      "[fd00::/8]:7072",
    ]) {
      expect(destinationEntryProblem(entry), entry).toBeUndefined();
    }
  });

  it("says what is wrong with an entry that does not read", () => {
    expect(destinationEntryProblem("::1")).toMatch(/IPv6 addresses in brackets/);
    expect(destinationEntryProblem("10.0.0.0/33")).toMatch(/at most \/32/);
    expect(destinationEntryProblem("300.1.1.1")).toMatch(/not an IPv4 address/);
    expect(destinationEntryProblem("host:0")).toMatch(/ports run from 1 to 65535/);
    expect(destinationEntryProblem("host:9-1")).toMatch(/low before high/);
    expect(destinationEntryProblem("host:http")).toMatch(/port must be a number/);
    expect(destinationEntryProblem("*.com")).toMatch(/wildcard/);
    expect(destinationEntryProblem("http://host/")).toBeDefined();
    expect(destinationEntryProblem("[::1")).toMatch(/without "\]"/);
  });
});

describe("DestinationList.lists", () => {
  it("matches a name entry by the URL's host name, whatever it resolves to", () => {
    const list = new DestinationList(["agents.example.com:7072"]);
    expect(list.lists(at("agents.example.com", 7072, "10.0.0.5"))).toBe(true);
    expect(list.lists(at("AGENTS.example.com.", 7072, "10.0.0.5"))).toBe(true);
    expect(list.lists(at("agents.example.com", 7073, "10.0.0.5"))).toBe(false);
    expect(list.lists(at("other.example.com", 7072, "10.0.0.5"))).toBe(false);
  });

  it("matches a wildcard below its domain only", () => {
    const list = new DestinationList(["*.corp.example.com"]);
    expect(list.lists(at("a.corp.example.com", 80, "10.0.0.1"))).toBe(true);
    expect(list.lists(at("b.a.corp.example.com", 80, "10.0.0.1"))).toBe(true);
    expect(list.lists(at("corp.example.com", 80, "10.0.0.1"))).toBe(false);
    expect(list.lists(at("evilcorp.example.com", 80, "10.0.0.1"))).toBe(false);
  });

  it("matches an address range by the address connected to, IPv4-mapped IPv6 included", () => {
    const list = new DestinationList(["127.0.0.0/8:1024-65535", "[fd00::/8]"]);
    expect(list.lists(at("127.0.0.1", 8080))).toBe(true);
    expect(list.lists(at("some.name", 8080, "127.0.0.2"))).toBe(true);
    expect(list.lists(at("::ffff:127.0.0.1", 8080))).toBe(true);
    expect(list.lists(at("127.0.0.1", 80))).toBe(false);
    expect(list.lists(at("fd00::7", 1))).toBe(true);
    expect(list.lists(at("10.0.0.1", 8080))).toBe(false);
  });
});
