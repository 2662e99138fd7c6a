/**
 * The `max_output_bytes` cap: counts the UTF-8 bytes of stdout and stderr together and lets
 * through no more than the limit. Once anything is held back, everything after it is too, so
 * what is shown is an unbroken beginning of the output.
 */
export class OutputCap {
  private shownBytes = 0;
  private hidden = 0;

  /** `limit` undefined: no cap. */
  constructor(readonly limit: number | undefined) {}

  /** Bytes that were not let through. */
  get hiddenBytes(): number {
    return this.hidden;
  }

  /** The part of `text` that may still be shown; never half a character. */
  admit(text: string): string {
    if (this.limit === undefined || text === "") return text;
    const bytes = Buffer.byteLength(text, "utf8");
    if (this.hidden === 0 && this.shownBytes + bytes <= this.limit) {
      this.shownBytes += bytes;
      return text;
    }
    const shown = this.hidden === 0 ? utf8Prefix(text, this.limit - this.shownBytes) : "";
    const shownBytes = Buffer.byteLength(shown, "utf8");
    this.shownBytes += shownBytes;
    this.hidden += bytes - shownBytes;
    return shown;
  }

  /** The line that tells the reader output was held back, or undefined when none was. */
  marker(fullOutputFiles: readonly string[] = []): string | undefined {
    if (this.hidden === 0) return undefined;
    const where = fullOutputFiles.length > 0 ? `; full output in ${fullOutputFiles.join(" and ")}` : "";
    return `[runyard] output capped at ${this.limit} bytes: ${this.hidden} more bytes not shown${where}\n`;
  }
}

/** The longest beginning of `text` that fits in `maxBytes` UTF-8 bytes without cutting a character. */
export function utf8Prefix(text: string, maxBytes: number): string {
  if (maxBytes <= 0) return "";
  const bytes = Buffer.from(text, "utf8");
  if (bytes.length <= maxBytes) return text;
  let end = maxBytes;
  // bytes[end] is the first byte left out; while it continues a character, that character is cut.
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return bytes.subarray(0, end).toString("utf8");
}
