import stringWidth from "string-width";

/**
 * What a terminal would act on rather than print: ESC sequences (CSI such as `ESC[2J`, OSC such
 * as a window title `ESC]0;...BEL`, DCS/SOS/PM/APC strings, two-byte escapes), their 8-bit C1
 * forms, and any other C0 control, DEL or C1 control left over.
 */
const terminalSequence = new RegExp(
  [
    // Strings (OSC, DCS, SOS, PM, APC) up to their terminator; an unterminated one loses its introducer only.
    "(?:\\u001b[\\]PX^_]|[\\u009d\\u0090\\u0098\\u009e\\u009f])[^\\u0007\\u001b\\u009c]*(?:\\u0007|\\u001b\\\\|\\u009c)",
    "(?:\\u001b\\[|\\u009b)[0-?]*[ -/]*[@-~]?",
    "\\u001b[ -/]*[0-~]?",
  ].join("|"),
  "g",
);
/** Tabs and line breaks become a space, so a cell stays on its row. */
const whitespaceControl = /[\t\n\v\f\r]/g;
const control = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * `text` safe to print in a terminal: escape sequences and control characters removed, tabs and
 * line breaks turned into spaces. For text that users or runners chose (run, step, bot, runner
 * and user names), which could otherwise clear the screen, retitle the window or fake output.
 */
export function printable(text: string): string {
  return text.replace(terminalSequence, "").replace(whitespaceControl, " ").replace(control, "");
}

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
