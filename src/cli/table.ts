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
