import { describe, expect, it } from "vitest";
import { BoundedText, clipped } from "./bounded-text.js";

describe("BoundedText", () => {
  it("keeps everything while it fits", () => {
    const text = new BoundedText(100);
    text.push("hello ");
    text.push("world");
    expect(text.text()).toBe("hello world");
  });

  it("keeps the head and the tail and says how much of the middle went", () => {
    const text = new BoundedText(10);
    for (const chunk of ["abcde", "fghij", "klmno", "pqrst"]) text.push(chunk);
    expect(text.text()).toBe(
      "abcde\n[... 10 characters left out: the middle of this output was too large to keep ...]\npqrst",
    );
  });
});

describe("clipped", () => {
  it("cuts one long text and says how much", () => {
    expect(clipped("abcdef", 4)).toBe("abcd\n[... 2 more characters not shown ...]");
    expect(clipped("abc", 4)).toBe("abc");
  });
});
