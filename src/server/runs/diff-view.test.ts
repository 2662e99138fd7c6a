import { describe, expect, it } from "vitest";
import { parseDiff } from "./diff-view.js";

const fileDiff = (name: string, lines: number) =>
  [
    `diff --git a/${name} b/${name}`,
    "new file mode 100644",
    "--- /dev/null",
    `+++ b/${name}`,
    `@@ -0,0 +1,${lines} @@`,
    ...Array.from({ length: lines }, (_, i) => `+line ${i + 1}`),
  ].join("\n");

describe("parseDiff", () => {
  it("numbers a modified file's lines, old and new, and counts them", () => {
    const patch = [
      "diff --git a/x.ts b/x.ts",
      "index 1..2 100644",
      "--- a/x.ts",
      "+++ b/x.ts",
      "@@ -1,3 +1,3 @@",
      " keep",
      "-old",
      "+new",
      " --- not a header",
      "\\ No newline at end of file",
      "",
    ].join("\n");
    const [file] = parseDiff(patch).files;
    expect(file).toMatchObject({ path: "x.ts", status: "modified", additions: 1, deletions: 1 });
    expect(file?.hunks[0]?.lines).toEqual([
      { kind: "context", text: "keep", old_line: 1, new_line: 1 },
      { kind: "del", text: "old", old_line: 2, new_line: null },
      { kind: "add", text: "new", old_line: null, new_line: 2 },
      { kind: "context", text: "--- not a header", old_line: 3, new_line: 3 },
    ]);
  });

  it("reads renames, deletions, binary files and git's quoted names", () => {
    const patch = [
      "diff --git a/old.md b/new.md",
      "similarity index 100%",
      "rename from old.md",
      "rename to new.md",
      "diff --git a/gone.txt b/gone.txt",
      "deleted file mode 100644",
      "--- a/gone.txt",
      "+++ /dev/null",
      "@@ -1 +0,0 @@",
      "-bye",
      "diff --git a/img.png b/img.png",
      "new file mode 100644",
      "Binary files /dev/null and b/img.png differ",
      'diff --git "a/caf\\303\\251.txt" "b/caf\\303\\251.txt"',
      "new file mode 100644",
      "--- /dev/null",
      '+++ "b/caf\\303\\251.txt"',
      "@@ -0,0 +1 @@",
      "+hi",
    ].join("\n");
    const files = parseDiff(patch).files;
    expect(files.map((f) => [f.path, f.status, f.old_path, f.binary])).toEqual([
      ["new.md", "renamed", "old.md", false],
      ["gone.txt", "deleted", null, false],
      ["img.png", "added", null, true],
      ["café.txt", "added", null, false],
    ]);
  });

  it("leaves out the files past the bounds and counts them", () => {
    const patch = [fileDiff("a", 5), fileDiff("b", 5), fileDiff("c", 1)].join("\n");
    expect(parseDiff(patch, { maxFiles: 10, maxLines: 8 })).toMatchObject({
      files: [{ path: "a" }],
      omitted_files: 2,
    });
    expect(parseDiff(patch, { maxFiles: 2, maxLines: 100 }).omitted_files).toBe(1);
  });
});
