/**
 * Text kept within a size: its head and its tail, with a line saying how much was left out
 * between them. An agent's transcript or its tests' output can be any size; a runner's memory
 * and an artifact cannot.
 */
export class BoundedText {
  private head = "";
  private tail = "";
  private dropped = 0;

  constructor(private readonly maxChars: number) {}

  push(text: string): void {
    const half = Math.floor(this.maxChars / 2);
    if (this.head.length < half) {
      const room = half - this.head.length;
      this.head += text.slice(0, room);
      text = text.slice(room);
    }
    if (!text) return;
    this.tail += text;
    if (this.tail.length > half) {
      this.dropped += this.tail.length - half;
      this.tail = this.tail.slice(this.tail.length - half);
    }
  }

  get empty(): boolean {
    return this.head === "" && this.tail === "";
  }

  text(): string {
    if (this.dropped === 0) return this.head + this.tail;
    return `${this.head}\n[... ${this.dropped} characters left out: the middle of this output was too large to keep ...]\n${this.tail}`;
  }
}

/** One event's text, cut to `max` characters with a note of what was cut. */
export function clipped(text: string, max: number): string {
  return text.length <= max
    ? text
    : `${text.slice(0, max)}\n[... ${text.length - max} more characters not shown ...]`;
}
