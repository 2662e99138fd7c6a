import { z } from "zod";

/**
 * A `git diff` patch (as an agent run's `<agent>.diff` artifact holds it) read into files, hunks
 * and numbered lines for review, bounded: past `maxFiles` files or `maxLines` lines in all, the
 * remaining files are left out and counted.
 */

const DiffLine = z.object({
  kind: z.enum(["add", "del", "context"]),
  text: z.string(),
  old_line: z.number().int().nullable(),
  new_line: z.number().int().nullable(),
});

const DiffHunk = z.object({ header: z.string(), lines: z.array(DiffLine) });
type DiffHunk = z.infer<typeof DiffHunk>;

export const DiffFile = z.object({
  path: z.string(),
  old_path: z.string().nullable().describe("the name before a rename"),
  status: z.enum(["added", "deleted", "modified", "renamed"]),
  binary: z.boolean(),
  additions: z.number().int(),
  deletions: z.number().int(),
  hunks: z.array(DiffHunk),
});
export type DiffFile = z.infer<typeof DiffFile>;

export interface DiffView {
  files: DiffFile[];
  omitted_files: number;
}

export interface DiffBounds {
  maxFiles: number;
  maxLines: number;
}

export const defaultDiffBounds: DiffBounds = { maxFiles: 300, maxLines: 20_000 };

/** `a/x` or `"a/x\303\251"` from a `---`/`+++` line to `x`; null for /dev/null. */
function pathOf(raw: string): string | null {
  let text = raw.replace(/\t.*$/, "").trim();
  if (text === "/dev/null") return null;
  if (text.startsWith('"') && text.endsWith('"')) text = unquote(text.slice(1, -1));
  return text.replace(/^[ab]\//, "");
}

/** git's C-style quoting of unusual names, octal bytes decoded as UTF-8. */
function unquote(text: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const ch = text[i] as string;
    if (ch !== "\\") {
      bytes.push(...Buffer.from(ch, "utf8"));
      continue;
    }
    const next = text[i + 1] ?? "";
    if (/[0-7]/.test(next)) {
      bytes.push(Number.parseInt(text.slice(i + 1, i + 4), 8));
      i += 3;
    } else {
      const map: Record<string, string> = { n: "\n", t: "\t", '"': '"', "\\": "\\" };
      bytes.push(...Buffer.from(map[next] ?? next, "utf8"));
      i += 1;
    }
  }
  return Buffer.from(bytes).toString("utf8");
}

/** The path named on a `diff --git a/x b/x` line, for files with no ---/+++ lines (binary, mode-only). */
function headerPath(line: string): string {
  const rest = line.slice("diff --git ".length);
  const half = rest.lastIndexOf(" b/");
  return half >= 0 ? rest.slice(half + 3) : rest;
}

export function parseDiff(patch: string, bounds: DiffBounds = defaultDiffBounds): DiffView {
  const files: DiffFile[] = [];
  let omitted = 0;
  let lines = 0;
  let file: DiffFile | undefined;
  let hunk: DiffHunk | undefined;
  let oldLine = 0;
  let newLine = 0;
  let keep = true;
  const finish = () => {
    if (!file) return;
    const size = file.hunks.reduce((n, h) => n + h.lines.length, 0);
    if (keep && files.length < bounds.maxFiles && lines + size <= bounds.maxLines) {
      files.push(file);
      lines += size;
    } else {
      keep = false;
      omitted++;
    }
  };
  for (const line of patch.split("\n")) {
    if (line.startsWith("diff --git ")) {
      finish();
      const path = headerPath(line);
      file = {
        path,
        old_path: null,
        status: "modified",
        binary: false,
        additions: 0,
        deletions: 0,
        hunks: [],
      };
      hunk = undefined;
      continue;
    }
    if (!file) continue;
    if (!hunk) {
      if (line.startsWith("new file mode")) file.status = "added";
      else if (line.startsWith("deleted file mode")) file.status = "deleted";
      else if (line.startsWith("rename from ")) {
        file.status = "renamed";
        file.old_path = line.slice("rename from ".length);
      } else if (line.startsWith("rename to ")) file.path = line.slice("rename to ".length);
      else if (line.startsWith("Binary files ") || line.startsWith("GIT binary patch")) file.binary = true;
      else if (line.startsWith("--- ")) {
        const old = pathOf(line.slice(4));
        if (old && file.status === "modified" && old !== file.path) file.old_path = old;
      } else if (line.startsWith("+++ ")) {
        const now = pathOf(line.slice(4));
        if (now) file.path = now;
        else if (file.old_path) file.path = file.old_path;
      }
    }
    const start = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@/.exec(line);
    if (start && !file.binary) {
      hunk = { header: line, lines: [] };
      file.hunks.push(hunk);
      oldLine = Number(start[1]);
      newLine = Number(start[2]);
      continue;
    }
    if (!hunk) continue;
    const mark = line[0];
    const text = line.slice(1);
    if (mark === "+") {
      hunk.lines.push({ kind: "add", text, old_line: null, new_line: newLine++ });
      file.additions++;
    } else if (mark === "-") {
      hunk.lines.push({ kind: "del", text, old_line: oldLine++, new_line: null });
      file.deletions++;
    } else if (mark === " ") {
      hunk.lines.push({ kind: "context", text, old_line: oldLine++, new_line: newLine++ });
    }
    // "\ No newline at end of file" and the patch's trailing empty line carry no line.
  }
  finish();
  return { files, omitted_files: omitted };
}
