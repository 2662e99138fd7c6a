import { describe, expect, it } from "vitest";
import { statsOf } from "./worktree.js";

describe("statsOf", () => {
  it("sums git diff --numstat, counting a binary file as a file with no lines", () => {
    expect(statsOf("3\t1\tREADME.md\n-\t-\tlogo.png\n0\t7\told.txt\n")).toEqual({
      files: 3,
      insertions: 3,
      deletions: 8,
    });
    expect(statsOf("")).toEqual({ files: 0, insertions: 0, deletions: 0 });
  });
});
