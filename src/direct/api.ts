import { z } from "zod";
import { ErrorInfo } from "../core/events.js";
import { StepAttemptResult } from "../core/step-attempt.js";

/**
 * The agent-server's HTTP answers (the agent-server API's direct dispatch), shared by `server.ts`
 * and `client.ts`. A task is one step attempt; its output is one log, and offsets count
 * UTF-8 bytes of that log, so a client that asks from the offset it was given never sees a
 * byte twice.
 */

/** Longest `wait_ms` a `/status` long-poll may ask for. */
export const MAX_STATUS_WAIT_MS = 30_000;

/** Header naming one `/run` request, so that sending it again after a lost answer cannot run the step twice. */
export const ATTEMPT_KEY_HEADER = "x-runyard-attempt-key";

export const OutputEntry = z.object({ stream: z.enum(["stdout", "stderr"]), data: z.string() });
export type OutputEntry = z.infer<typeof OutputEntry>;

/** `/run` (200 or 202) and `/status`: where a task is, and the output past the asked offset. */
export const TaskAnswer = z.object({
  task_id: z.string(),
  state: z.enum(["running", "done"]),
  output: z.array(OutputEntry).default([]),
  /** Offset of the first byte after `output`: the `offset` to ask for next. */
  offset: z.number().int().nonnegative().default(0),
  /** More output follows than fit in this answer; ask again from `offset` even when done. */
  more: z.boolean().default(false),
  /** Bytes between the asked offset and the oldest output still kept, which are lost. */
  dropped_bytes: z.number().int().nonnegative().optional(),
  result: StepAttemptResult.optional(),
});
export type TaskAnswer = z.infer<typeof TaskAnswer>;

export const CancelAnswer = z.object({
  task_id: z.string(),
  state: z.enum(["canceling", "done"]),
});
export type CancelAnswer = z.infer<typeof CancelAnswer>;

/** Every refusal: `{ error: { code, message, hint } }`. */
export const ErrorAnswer = z.object({ error: ErrorInfo });
