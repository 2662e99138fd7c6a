/**
 * What keeps this runner's messages within the server's limit (`maxRunnerMessageBytes`): the
 * server closes the socket of a runner that sends a larger one, and a runner that sent it again
 * on every reconnect would never get its job through.
 */
import { errorInfo } from "../core/errors.js";
import type { EventInput } from "../core/events.js";
import type { JobResult } from "../core/jobs/index.js";
import { maxRunnerMessageBytes } from "../core/protocol.js";

/**
 * The most characters one output event carries. A batch is cut at about 96 KiB of output
 * (runner.ts), so with one such event past that and every character escaped as JSON (six
 * bytes), a batch stays near 1 MiB, far under the limit.
 */
export const maxOutputEventChars = 64 * 1024;

/** An output event as events of at most `maxOutputEventChars` characters each; any other as it is. */
export function outputPieces(event: EventInput): EventInput[] {
  if (event.type !== "step.output" || event.data.length <= maxOutputEventChars) return [event];
  const pieces: EventInput[] = [];
  for (let at = 0; at < event.data.length; ) {
    let end = Math.min(at + maxOutputEventChars, event.data.length);
    // A character of two UTF-16 units stays whole.
    const code = event.data.charCodeAt(end - 1);
    if (end < event.data.length && code >= 0xd800 && code <= 0xdbff) end -= 1;
    pieces.push({ ...event, data: event.data.slice(at, end) });
    at = end;
  }
  return pieces;
}

/** The most of an agent's answer a result carries when the whole would not fit (escaped, 1.5 MiB at most). */
export const maxFinalTextChars = 256 * 1024;

/**
 * A job's result as its `finished` message can carry it: a step's whose exports and warnings
 * would make the message larger than the server takes fails, saying so, without them; an
 * agent's answer (up to 8 MiB from its CLI) is cut, saying so (the transcript artifact has more).
 */
export function resultWithinLimit(result: JobResult, messageBytes: (result: JobResult) => number): JobResult {
  const bytes = messageBytes(result);
  if (bytes <= maxRunnerMessageBytes) return result;
  if (result.kind === "agent" && result.final_text !== undefined) {
    const text = result.final_text;
    return {
      ...result,
      final_text: `${text.slice(0, maxFinalTextChars)}\n[cut: the answer has ${text.length} characters; the transcript artifact has more]`,
    };
  }
  if (result.kind !== "step") return result;
  const mib = (value: number) => (value / (1024 * 1024)).toFixed(1);
  return {
    ...result,
    status: "failed",
    exports: {},
    secret_exports: [],
    warnings: result.warnings.slice(0, 20),
    error: errorInfo(
      "EXPORT_TOO_LARGE",
      `the step's exports and warnings are ${mib(bytes)} MiB as JSON; a step's result may hold at most ${mib(maxRunnerMessageBytes)} MiB`,
      "Export less: write big data to a file and export its path instead.",
    ),
  };
}
