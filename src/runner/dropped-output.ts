import type { EventInput } from "../core/events.js";

/**
 * A job's output the runner dropped while its server was unreachable and it had no room left (in
 * memory, or in the spool on disk), counted until a notice on the step whose output it was says
 * how much went and why.
 */
export class DroppedOutput {
  private bytes = 0;
  private from: { step: string; host: string } | undefined;
  private why = "";

  /** Output is being dropped, and no notice said so yet. */
  get dropping(): boolean {
    return this.bytes > 0;
  }

  /** Why the output goes (the cap it met). */
  get reason(): string {
    return this.why;
  }

  /** Counts `event`'s output as dropped for `why`; true when it is the first since the last notice. */
  add(event: EventInput, why: string): boolean {
    if (event.type !== "step.output") return false;
    const first = this.bytes === 0;
    this.bytes += event.data.length;
    this.from = { step: event.step, host: event.host };
    this.why = why;
    return first;
  }

  /** The notice of output dropped since the last one, if any; the count starts again. */
  notice(): EventInput | undefined {
    if (this.bytes === 0 || !this.from) return undefined;
    const notice: EventInput = {
      type: "notice",
      level: "warn",
      ...this.from,
      message: `${this.bytes} characters of output were dropped: the server was unreachable and ${this.why}`,
    };
    this.bytes = 0;
    return notice;
  }
}
