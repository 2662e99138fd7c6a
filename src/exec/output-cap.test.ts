import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutputCap, utf8Prefix } from "./output-cap.js";

describe("OutputCap", () => {
  it("lets everything through without a limit", () => {
    const cap = new OutputCap(undefined);
    expect(cap.admit("x".repeat(10_000))).toHaveLength(10_000);
    expect(cap.marker()).toBeUndefined();
  });

  it("counts stdout and stderr together and shows an unbroken beginning", () => {
    const cap = new OutputCap(10);
    expect(cap.admit("12345")).toBe("12345");
    expect(cap.admit("6789")).toBe("6789");
    expect(cap.admit("abc")).toBe("a");
    expect(cap.admit("d")).toBe("");
    expect(cap.hiddenBytes).toBe(3);
  });

  it("never shows a later chunk after one was held back", () => {
    const cap = new OutputCap(5);
    expect(cap.admit("1234€")).toBe("1234");
    expect(cap.admit("x")).toBe("");
    expect(cap.hiddenBytes).toBe(4);
  });

  it("counts UTF-8 bytes, not characters", () => {
    const cap = new OutputCap(6);
    expect(cap.admit("€€€")).toBe("€€");
    expect(cap.hiddenBytes).toBe(3);
  });

  it("writes a marker naming the limit, the bytes held back and the full-output files", () => {
    const cap = new OutputCap(4);
    cap.admit("abcdefgh");
    expect(cap.marker()).toBe("[runyard] output capped at 4 bytes: 4 more bytes not shown\n");
    expect(cap.marker(["/o/a.stdout.log", "/o/a.stderr.log"])).toBe(
      "[runyard] output capped at 4 bytes: 4 more bytes not shown; full output in /o/a.stdout.log and /o/a.stderr.log\n",
    );
  });

  it("with a limit of 0 shows nothing", () => {
    const cap = new OutputCap(0);
    expect(cap.admit("a")).toBe("");
    expect(cap.marker()).toContain("1 more bytes");
  });
});

describe("utf8Prefix", () => {
  it("never cuts a character in half", () => {
    expect(utf8Prefix("a€", 3)).toBe("a");
    expect(utf8Prefix("a€", 4)).toBe("a€");
    expect(utf8Prefix("😀x", 3)).toBe("");
    expect(utf8Prefix("😀x", 4)).toBe("😀");
  });

  it("returns the longest whole-character beginning that fits", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.nat(64), (text, max) => {
        const prefix = utf8Prefix(text, max);
        const bytes = Buffer.byteLength(prefix, "utf8");
        expect(text.startsWith(prefix)).toBe(true);
        expect(bytes).toBeLessThanOrEqual(max);
        const next = text.slice(prefix.length).codePointAt(0);
        if (next !== undefined) {
          expect(bytes + Buffer.byteLength(String.fromCodePoint(next), "utf8")).toBeGreaterThan(max);
        }
      }),
    );
  });
});
