import { StringDecoder } from "node:string_decoder";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { OutputDecoder } from "./output-decoder.js";

function decodeChunks(chunks: Buffer[], decoder: { write(b: Buffer): string; end(): string }): string {
  return chunks.map((chunk) => decoder.write(chunk)).join("") + decoder.end();
}

/** `bytes` cut at `cuts` (offsets, in any order). */
function cut(bytes: Buffer, cuts: number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const end of [...at, bytes.length]) {
    chunks.push(bytes.subarray(start, end));
    start = end;
  }
  return chunks;
}

/**
 * Any text of Unicode scalar values (every code point but the surrogates: UTF-8 of one to four
 * bytes), up to 40 characters. The same domain as fast-check's `string({ unit: "binary" })`, made
 * 40 times faster: that one took 2 s of CPU for the 2,000 runs below, past the test's 10 s on a
 * busy machine.
 */
const validText = fc
  .array(fc.oneof(fc.integer({ min: 0, max: 0xd7ff }), fc.integer({ min: 0xe000, max: 0x10ffff })), {
    maxLength: 40,
  })
  .map((points) => String.fromCodePoint(...points));

describe("OutputDecoder", () => {
  it("gives ASCII back as it is", () => {
    const decoder = new OutputDecoder();
    expect(decoder.write(Buffer.from("hello\n"))).toBe("hello\n");
    expect(decoder.write(Buffer.from("world"))).toBe("world");
    expect(decoder.end()).toBe("");
  });

  it("keeps a character split across chunks whole, wherever it is cut", () => {
    const text = "a é € 😀 z\n";
    const bytes = Buffer.from(text);
    for (let i = 0; i <= bytes.length; i++) {
      for (let j = i; j <= bytes.length; j++) {
        expect(decodeChunks(cut(bytes, [i, j]), new OutputDecoder())).toBe(text);
      }
    }
  });

  it("shows bytes that are not UTF-8 as U+FFFD, an ASCII chunk after them included", () => {
    const decoder = new OutputDecoder();
    expect(decoder.write(Buffer.from([0x61, 0xff, 0x62]))).toBe("a\ufffdb");
    // A chunk ending on the first byte of a character that never comes.
    expect(decoder.write(Buffer.from([0x63, 0xe2, 0x82]))).toBe("c");
    expect(decoder.write(Buffer.from("d\n"))).toBe("\ufffdd\n");
    expect(decoder.write(Buffer.from([0xf0, 0x9f]))).toBe("");
    expect(decoder.end()).toBe("\ufffd");
  });

  it("decodes any bytes, however they are chunked, as Node's StringDecoder does (property)", () => {
    const byte = fc.oneof(
      fc.integer({ min: 0x20, max: 0x7e }),
      fc.integer({ min: 0x80, max: 0xff }),
      fc.constantFrom(0x0a, 0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80),
    );
    fc.assert(
      fc.property(fc.array(byte, { maxLength: 64 }), fc.array(fc.nat(), { maxLength: 6 }), (values, cuts) => {
        const chunks = cut(Buffer.from(values), cuts);
        expect(decodeChunks(chunks, new OutputDecoder())).toBe(
          decodeChunks(chunks, new StringDecoder("utf8")),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it("decodes valid UTF-8 as the whole text, however it is chunked (property)", () => {
    fc.assert(
      fc.property(validText, fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
        const bytes = Buffer.from(text);
        expect(decodeChunks(cut(bytes, cuts), new OutputDecoder())).toBe(bytes.toString("utf8"));
      }),
      { numRuns: 2000 },
    );
  });
});
