import { describe, expect, it } from "vitest";
import type { OutputStream } from "../types.js";
import { PodLogLines } from "./pod-log.js";

function collect(maxLineChars?: number) {
  const got: Array<[OutputStream, string]> = [];
  const lines = new PodLogLines((stream, data) => got.push([stream, data]), maxLineChars);
  return { lines, got };
}

describe("PodLogLines", () => {
  it("hands each marked line to its stream, a line split across chunks whole", () => {
    const { lines, got } = collect();
    lines.push(Buffer.from("O hel"));
    lines.push(Buffer.from("lo\nE oops\nkubelet says\nO la"));
    lines.push(Buffer.from("st"));
    lines.end();
    expect(got).toEqual([
      ["stdout", "hello\n"],
      ["stderr", "oops\n"],
      ["stderr", "kubelet says\n"],
      ["stdout", "last\n"],
    ]);
  });

  it("drops a line longer than its cap, never holding it, and reads the next line", () => {
    const { lines, got } = collect(16);
    // Written past the init, straight to the log: a line with no end in sight.
    for (let i = 0; i < 100; i++) lines.push(Buffer.from("O xxxxxxxxxx"));
    expect((lines as unknown as { pending: string }).pending).toBe("");
    lines.push(Buffer.from("xxx\nO after\n"));
    lines.push(Buffer.from("O 0123456789abcdefgh"));
    lines.end();
    expect(got).toEqual([["stdout", "after\n"]]);
  });

  it("keeps a line of the cap's length", () => {
    const { lines, got } = collect(8);
    lines.push(Buffer.from("O 123456\nO 1234567\n"));
    lines.end();
    expect(got).toEqual([["stdout", "123456\n"]]);
  });
});
