/**
 * Variables a step exports: `BOPS_EXPORT:KEY=value` lines on its stdout (when `export_vars`)
 * and the file named by `$RUNYARD_OUTPUT` (`KEY=value` lines and GitHub-style
 * `KEY<<DELIMITER` ... `DELIMITER` blocks). Values are kept literally: they are only ever
 * handed on as environment variables, never pasted into shell code.
 */

export const EXPORT_PREFIX = "BOPS_EXPORT:";

/** The largest value one export may have: it travels in env, events and the run record. */
export const MAX_EXPORT_VALUE_BYTES = 1024 * 1024;

/** The message for a value over the cap; it names the variable, never shows the value. */
export function exportTooLargeMessage(where: string, name: string): string {
  return `${where}: the value of ${quoteName(name)} is over the 1 MiB cap of one exported value`;
}

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
 * is shown, so a secret-named export is masked in its own line too. An export line whose value
 * grows past the cap is dropped as it streams: never held whole, and never shown (its value
 * may be a secret that never got the chance to be learnt).
 */
export class ExportLineReader {
  readonly exports = new Map<string, string>();
  readonly warnings: string[] = [];
  /** Names whose value was over `MAX_EXPORT_VALUE_BYTES`: not exported, the step fails. */
  readonly tooLarge: string[] = [];
  private partial = "";
  /** The current line is shown as it comes: it has already shown it is not an export line. */
  private skipping = false;
  /** The current line is an export line past the cap: the rest of it is neither kept nor shown. */
  private discarding = false;

  constructor(private readonly onExport: (name: string, value: string) => void = () => {}) {}

  /** Reads a chunk of stdout; returns the part of the output that may be shown now. */
  push(chunk: string): string {
    let shown = "";
    let start = 0;
    for (let newline = chunk.indexOf("\n"); newline >= 0; newline = chunk.indexOf("\n", start)) {
      const segment = chunk.slice(start, newline + 1);
      if (this.skipping) shown += segment;
      else if (!this.discarding) {
        // The held line is shown only once it has been read, so its export is learnt first.
        const line = this.partial + segment;
        if (this.readLine(line.slice(0, -1)) !== "too-large") shown += line;
      }
      this.partial = "";
      this.skipping = false;
      this.discarding = false;
      start = newline + 1;
    }
    if (start === chunk.length || this.discarding) return shown;
    if (this.skipping) return shown + chunk.slice(start);
    this.partial += chunk.slice(start);
    const couldBeExport =
      this.partial.length < EXPORT_PREFIX.length
        ? EXPORT_PREFIX.startsWith(this.partial)
        : this.partial.startsWith(EXPORT_PREFIX);
    if (!couldBeExport) {
      shown += this.partial;
      this.partial = "";
      this.skipping = true;
    } else if (this.partial.length > EXPORT_PREFIX.length + MAX_EXPORT_VALUE_BYTES) {
      this.dropLongLine();
    }
    return shown;
  }

  /** Characters of an unfinished line held in memory: never much more than the value cap. */
  get heldChars(): number {
    return this.partial.length;
  }

  /** An unfinished export line past the cap: reported now, and the rest of it is dropped. */
  private dropLongLine(): void {
    const equals = this.partial.indexOf("=");
    const value = equals < 0 ? 0 : this.partial.length - equals - 1;
    if (value > MAX_EXPORT_VALUE_BYTES) {
      const name = this.partial.slice(EXPORT_PREFIX.length, equals).trim();
      this.tooLarge.push(name);
      this.warnings.push(exportTooLargeMessage(`${EXPORT_PREFIX} line`, name));
    } else if (equals < 0) {
      this.warnings.push(
        `${EXPORT_PREFIX} line without "=" in its first ${this.partial.length} characters ignored`,
      );
    } else {
      return; // a long name and a value still under the cap
    }
    this.partial = "";
    this.discarding = true;
  }

  /** Reads the last line when the output did not end with a newline; returns what may be shown of it. */
  end(): string {
    const held = this.skipping || this.discarding ? "" : this.partial;
    const shown = held && this.readLine(held) !== "too-large" ? held : "";
    this.partial = "";
    this.skipping = false;
    this.discarding = false;
    return shown;
  }

  /** Reads one whole line; "too-large" when it is an export line whose value is over the cap. */
  private readLine(line: string): "too-large" | undefined {
    if (!line.startsWith(EXPORT_PREFIX)) return undefined;
    const body = line.endsWith("\r")
      ? line.slice(EXPORT_PREFIX.length, -1)
      : line.slice(EXPORT_PREFIX.length);
    const equals = body.indexOf("=");
    if (equals < 0) {
      this.warnings.push(`${EXPORT_PREFIX} line without "=" ignored (expected ${EXPORT_PREFIX}KEY=value)`);
      return undefined;
    }
    const name = body.slice(0, equals).trim();
    if (!isValidExportName(name)) {
      this.warnings.push(invalidNameWarning(EXPORT_PREFIX, name));
      return undefined;
    }
    const value = body.slice(equals + 1);
    if (Buffer.byteLength(value, "utf8") > MAX_EXPORT_VALUE_BYTES) {
      this.tooLarge.push(name);
      this.warnings.push(exportTooLargeMessage(`${EXPORT_PREFIX} line`, name));
      return "too-large";
    }
    this.exports.set(name, value);
    this.onExport(name, value);
    return undefined;
  }
}

/** Parses the `$RUNYARD_OUTPUT` file. Warnings name the line, never its value (it may be a secret). */
export function parseOutputFile(text: string): {
  exports: Map<string, string>;
  warnings: string[];
  /** Names whose value was over `MAX_EXPORT_VALUE_BYTES`: not exported, the step fails. */
  tooLarge: string[];
} {
  const exports = new Map<string, string>();
  const warnings: string[] = [];
  const tooLarge: string[] = [];
  const keep = (index: number, name: string, value: string): void => {
    if (Buffer.byteLength(value, "utf8") <= MAX_EXPORT_VALUE_BYTES) exports.set(name, value);
    else {
      tooLarge.push(name);
      warnings.push(exportTooLargeMessage(where(index), name));
    }
  };
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
      if (isValidExportName(name)) keep(index, name, lines.slice(index + 1, close).join("\n"));
      else warnings.push(invalidNameWarning(where(index), name));
      index = close;
      continue;
    }
    if (equals < 0) {
      warnings.push(`${where(index)}: ignored, expected KEY=value or KEY<<DELIMITER`);
      continue;
    }
    const name = line.slice(0, equals).trim();
    if (isValidExportName(name)) keep(index, name, line.slice(equals + 1));
    else warnings.push(invalidNameWarning(where(index), name));
  }
  return { exports, warnings, tooLarge };
}
