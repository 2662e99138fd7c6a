/**
 * Variables a step exports: `BOPS_EXPORT:KEY=value` lines on its stdout (when `export_vars`)
 * and the file named by `$RUNYARD_OUTPUT` (`KEY=value` lines and GitHub-style
 * `KEY<<DELIMITER` ... `DELIMITER` blocks). Values are kept literally: they are only ever
 * handed on as environment variables, never pasted into shell code.
 */

export const EXPORT_PREFIX = "BOPS_EXPORT:";

const namePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Export names are environment variable names: letters, digits and `_`, not starting with a digit. */
export function isValidExportName(name: string): boolean {
  return namePattern.test(name);
}

function quoteName(name: string): string {
  return JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
}

function invalidNameWarning(where: string, name: string): string {
  return `${where}: ignored invalid name ${quoteName(name)} (use letters, digits and _, not starting with a digit)`;
}

/**
 * Reads `BOPS_EXPORT:` lines out of stdout as it streams; a line split across chunks is joined
 * first. Only a line that can still become an export line is kept in memory, and it is held
 * back from the output until it ends: `onExport` hears of the export before any of its line
 * is shown, so a secret-named export is masked in its own line too.
 */
export class ExportLineReader {
  readonly exports = new Map<string, string>();
  readonly warnings: string[] = [];
  private partial = "";
  /** The current line has already shown it is not an export line. */
  private skipping = false;

  constructor(private readonly onExport: (name: string, value: string) => void = () => {}) {}

  /** Reads a chunk of stdout; returns the part of the output that may be shown now. */
  push(chunk: string): string {
    const heldBefore = this.skipping ? "" : this.partial;
    let start = 0;
    for (let newline = chunk.indexOf("\n"); newline >= 0; newline = chunk.indexOf("\n", start)) {
      if (!this.skipping) this.readLine(this.partial + chunk.slice(start, newline));
      this.partial = "";
      this.skipping = false;
      start = newline + 1;
    }
    if (!this.skipping && start < chunk.length) {
      this.partial += chunk.slice(start);
      const couldBeExport =
        this.partial.length < EXPORT_PREFIX.length
          ? EXPORT_PREFIX.startsWith(this.partial)
          : this.partial.startsWith(EXPORT_PREFIX);
      if (!couldBeExport) {
        this.partial = "";
        this.skipping = true;
      }
    }
    const heldAfter = this.skipping ? "" : this.partial;
    if (heldAfter.length > 0 && heldAfter.length === heldBefore.length + chunk.length) return "";
    const shown = heldAfter.length === 0 ? chunk : chunk.slice(0, chunk.length - heldAfter.length);
    return heldBefore + shown;
  }

  /** Reads the last line when the output did not end with a newline; returns what was held. */
  end(): string {
    const held = this.skipping ? "" : this.partial;
    if (held) this.readLine(held);
    this.partial = "";
    this.skipping = false;
    return held;
  }

  private readLine(line: string): void {
    if (!line.startsWith(EXPORT_PREFIX)) return;
    const body = line.endsWith("\r")
      ? line.slice(EXPORT_PREFIX.length, -1)
      : line.slice(EXPORT_PREFIX.length);
    const equals = body.indexOf("=");
    if (equals < 0) {
      this.warnings.push(`${EXPORT_PREFIX} line without "=" ignored (expected ${EXPORT_PREFIX}KEY=value)`);
      return;
    }
    const name = body.slice(0, equals).trim();
    if (!isValidExportName(name)) {
      this.warnings.push(invalidNameWarning(EXPORT_PREFIX, name));
      return;
    }
    const value = body.slice(equals + 1);
    this.exports.set(name, value);
    this.onExport(name, value);
  }
}

/** Parses the `$RUNYARD_OUTPUT` file. Warnings name the line, never its value (it may be a secret). */
export function parseOutputFile(text: string): { exports: Map<string, string>; warnings: string[] } {
  const exports = new Map<string, string>();
  const warnings: string[] = [];
  const lines = text.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  // A file ending in a newline splits into one empty last element, which is not a line.
  if (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  const where = (index: number) => `$RUNYARD_OUTPUT line ${index + 1}`;

  for (let index = 0; index < lines.length; index++) {
    const line = lines[index]!;
    if (line.trim() === "") continue;
    const equals = line.indexOf("=");
    const heredoc = line.indexOf("<<");
    if (heredoc >= 0 && (equals < 0 || heredoc < equals)) {
      const name = line.slice(0, heredoc).trim();
      const delimiter = line.slice(heredoc + 2).trim();
      if (!delimiter) {
        warnings.push(`${where(index)}: ignored, "<<" needs a delimiter (KEY<<EOF ... EOF)`);
        continue;
      }
      const close = lines.indexOf(delimiter, index + 1);
      if (close < 0) {
        warnings.push(`${where(index)}: ignored, the value is never closed by a line "${delimiter}"`);
        break;
      }
      if (isValidExportName(name)) exports.set(name, lines.slice(index + 1, close).join("\n"));
      else warnings.push(invalidNameWarning(where(index), name));
      index = close;
      continue;
    }
    if (equals < 0) {
      warnings.push(`${where(index)}: ignored, expected KEY=value or KEY<<DELIMITER`);
      continue;
    }
    const name = line.slice(0, equals).trim();
    if (isValidExportName(name)) exports.set(name, line.slice(equals + 1));
    else warnings.push(invalidNameWarning(where(index), name));
  }
  return { exports, warnings };
}
