import { describe, expect, test } from "vitest";
import { parseListenAddress } from "./agent-server.js";

describe("--addr", () => {
  test.each([
    [":7072", { host: "127.0.0.1", port: 7072, hostGiven: false }],
    ["7072", { host: "127.0.0.1", port: 7072, hostGiven: false }],
    ["127.0.0.1:7072", { host: "127.0.0.1", port: 7072, hostGiven: true }],
    ["0.0.0.0:7072", { host: "0.0.0.0", port: 7072, hostGiven: true }],
    ["localhost:8080", { host: "localhost", port: 8080, hostGiven: true }],
    ["[::1]:7072", { host: "::1", port: 7072, hostGiven: true }],
  ])("%s listens on %o", (addr, expected) => {
    expect(parseListenAddress(addr)).toEqual(expected);
  });

  test.each(["", ":", "http://127.0.0.1:7072", "127.0.0.1", "host:70720", "a b:1"])(
    "%j is not an address to listen on",
    (addr) => {
      expect(parseListenAddress(addr)).toBeUndefined();
    },
  );
});
