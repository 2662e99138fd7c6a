import { describe, expect, it } from "vitest";
import { pooledRandomBytes } from "./random-pool.js";

describe("pooledRandomBytes", () => {
  it("hands out each byte once, across the pool's refills, each value a copy of its own", () => {
    // 12-byte IVs over ten pools' worth: 3,413 values, every one different (a repeat of 96
    // random bits is 2^-74 likely), none changed by the ones taken after it.
    const taken = Array.from({ length: Math.ceil((10 * 4096) / 12) }, () => pooledRandomBytes(12));
    const first = Buffer.from(taken[0]!);
    expect(new Set(taken.map((bytes) => bytes.toString("hex"))).size).toBe(taken.length);
    expect(taken.every((bytes) => bytes.length === 12)).toBe(true);
    expect(taken[0]).toEqual(first);
    // Not the zeros the pool leaves where it handed bytes out.
    expect(taken.filter((bytes) => bytes.every((byte) => byte === 0))).toEqual([]);
  });

  it("takes a value that does not fit in what is left of the pool from a fresh one", () => {
    const sizes = [4000, 200, 4096, 1, 4095];
    const values = sizes.map((size) => pooledRandomBytes(size));
    expect(values.map((bytes) => bytes.length)).toEqual(sizes);
    // A whole pool's worth is random, not the zeroed bytes of the pool before it.
    expect(values[2]!.filter((byte) => byte === 0).length).toBeLessThan(64);
  });

  it("refuses more than a pool holds, saying the limit", () => {
    expect(() => pooledRandomBytes(4097)).toThrow(/4097 bytes asked, at most 4096/);
  });
});
