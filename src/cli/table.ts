import stringWidth from "string-width";
import { printable } from "../core/terminal-text.js";

/**
 * Rows as aligned columns, the first row the header; every cell passes `printable`. The CLI's
 * tables all come through here; `--json` output never does, and stays exact.
 */
export function table(rows: string[][]): string {
  const safe = rows.map((row) => row.map(printable));
  // Columns line up by what a terminal draws: CJK and most emoji take two cells, combining marks none.
  const widths = safe[0]?.map((_, i) => Math.max(...safe.map((row) => stringWidth(row[i] ?? "")))) ?? [];
  return safe
    .map((row) =>
      row
        .map((cell, i) => cell + " ".repeat(Math.max(0, (widths[i] ?? 0) - stringWidth(cell))))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/**
 * What a list command prints: with `json`, the items as JSON (indented where the command always
 * did); none, the line `empty` (what to do to have some); else their table under `header`.
 */
export function printList<T>(
  stdout: { write(text: string): unknown },
  items: readonly T[],
  list: { json?: boolean; indentJson?: boolean; empty: string; header: string[]; row: (item: T) => string[] },
): number {
  if (list.json) stdout.write(`${JSON.stringify(items, null, list.indentJson ? 2 : undefined)}\n`);
  else if (items.length === 0) stdout.write(`${list.empty}\n`);
  else stdout.write(`${table([list.header, ...items.map(list.row)])}\n`);
  return 0;
}

/** What a command prints under `--json`: the value on one line; its exit code, 0. */
export function printJson(stdout: { write(text: string): unknown }, value: unknown): number {
  stdout.write(`${JSON.stringify(value)}\n`);
  return 0;
}
