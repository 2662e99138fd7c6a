import { describe, expect, test } from "vitest";
import { expandMatrix, matrixInstanceName, matrixInstances } from "./matrix.js";

describe("expandMatrix", () => {
  test("every combination of the axes, the first axis varying slowest", () => {
    const expansion = expandMatrix({
      axes: [
        ["NODE", ["18", "20"]],
        ["OS", ["a", "b"]],
      ],
      exclude: [],
      include: [],
    });
    expect(expansion).toEqual({
      combinations: [
        { NODE: "18", OS: "a" },
        { NODE: "18", OS: "b" },
        { NODE: "20", OS: "a" },
        { NODE: "20", OS: "b" },
      ],
    });
  });

  test("an exclude entry removes every combination it matches, also partly named", () => {
    const expansion = expandMatrix({
      axes: [
        ["OS", ["linux", "mac"]],
        ["NODE", ["18", "20"]],
        ["ARCH", ["x64", "arm"]],
      ],
      exclude: [
        { OS: "mac", ARCH: "x64" },
        { NODE: "18", ARCH: "arm", OS: "linux" },
      ],
      include: [],
    });
    expect("combinations" in expansion && expansion.combinations).toEqual([
      { OS: "linux", NODE: "18", ARCH: "x64" },
      { OS: "linux", NODE: "20", ARCH: "x64" },
      { OS: "linux", NODE: "20", ARCH: "arm" },
      { OS: "mac", NODE: "18", ARCH: "arm" },
      { OS: "mac", NODE: "20", ARCH: "arm" },
    ]);
  });

  // GitHub Actions' own example of include (docs: "Expanding or adding matrix configurations").
  test("include adds its values to the combinations it fits and appends the ones it fits none of", () => {
    const expansion = expandMatrix({
      axes: [
        ["fruit", ["apple", "pear"]],
        ["animal", ["cat", "dog"]],
      ],
      exclude: [],
      include: [
        { color: "green" },
        { color: "pink", animal: "cat" },
        { fruit: "apple", shape: "circle" },
        { fruit: "banana" },
        { fruit: "banana", animal: "cat" },
      ],
    });
    expect("combinations" in expansion && expansion.combinations).toEqual([
      { fruit: "apple", animal: "cat", color: "pink", shape: "circle" },
      { fruit: "apple", animal: "dog", color: "green", shape: "circle" },
      { fruit: "pear", animal: "cat", color: "pink" },
      { fruit: "pear", animal: "dog", color: "green" },
      { fruit: "banana" },
      { fruit: "banana", animal: "cat" },
    ]);
  });

  test("a 10,000-combination matrix stops at the first combination past the limit", () => {
    const values = Array.from({ length: 100 }, (_, i) => String(i));
    const expansion = expandMatrix({
      axes: [
        ["A", values],
        ["B", values],
      ],
      exclude: [],
      include: [],
    });
    expect(expansion).toEqual({ tooMany: { count: 257, atLeast: true } });
  });

  test("a matrix of millions of combinations is refused by its size, without walking it", () => {
    const values = Array.from({ length: 200 }, (_, i) => String(i));
    const expansion = expandMatrix({
      axes: [
        ["A", values],
        ["B", values],
        ["C", values],
      ],
      exclude: [],
      include: [],
    });
    expect(expansion).toEqual({ tooMany: { count: 8_000_000, atLeast: false } });
  });

  test("excludes may bring a large product under the limit", () => {
    const values = Array.from({ length: 20 }, (_, i) => String(i));
    const expansion = expandMatrix({
      axes: [
        ["A", values],
        ["B", values],
      ],
      exclude: values.slice(10).map((value) => ({ A: value })),
      include: [],
    });
    expect("combinations" in expansion && expansion.combinations).toHaveLength(200);
  });
});

test("a combination is named after its step and its values, in order", () => {
  expect(matrixInstanceName("test", { NODE: "18", OS: "a" })).toBe("test (NODE=18, OS=a)");
});

test("a long value is cut in the name, never in the variable; names stay unique", () => {
  const long = "x".repeat(200_000);
  const [first, second] = matrixInstances("t", [{ V: `${long}a` }, { V: `${long}b` }]);
  expect(first?.name).toBe(`t (V=${"x".repeat(39)}…)`);
  expect(second?.name).toBe(`t (V=${"x".repeat(39)}…) #2`);
  expect(second?.vars.V).toHaveLength(200_001);
  expect(matrixInstanceName("t", { MSG: "two\nlines" })).toBe("t (MSG=two lines)");
});
