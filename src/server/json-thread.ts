/**
 * Reads large JSON texts (HTTP bodies, runners' messages) on its own thread, so a member's multi-megabyte
 * text never holds the event loop; it comes back only with at most `maxJsonValues` values (json-body.ts).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { RunyardError } from "../core/errors.js";
import type { HashedRequest } from "./idempotency-hash.js";
import { ThreadQueue } from "./thread-queue.js";

const threadFile = new URL("./json-body-thread.js", import.meta.url);

/** Bodies larger than this are read on the JSON thread. */
export const threadMinBytes = 64 * 1024;
/**
 * The most values (objects, arrays, strings, numbers…) a large JSON body may hold: a submit holds at most
 * 1,000 variables and 1,000 environment entries, a workflow one string, a bot's code one base64 string.
 */
export const maxJsonValues = 50_000;

export interface JsonRequest {
  text: string;
  maxValues: number;
  /** The request to hash with the body for its `Idempotency-Key` (idempotency-hash.ts), if it has one. */
  hashFor?: HashedRequest;
}

/** A body read, with its request's hash when one was asked for, or that it holds too many values. */
export type JsonAnswer = JsonRead | { tooMany: true };

/** A body read, with its request's hash when one was asked for. */
export interface JsonRead {
  value: unknown;
  hash?: string;
}

/** One thread reading large bodies in order; started on first use, and again after it dies. */
export class JsonBodyThread {
  /** False in tests built from the TypeScript source (no built thread file): they read on the event loop. */
  static get available(): boolean {
    return existsSync(fileURLToPath(threadFile));
  }

  // An idle thread does not keep a stopping process alive.
  private readonly queue = new ThreadQueue<JsonRequest, JsonAnswer>({
    file: threadFile,
    name: "the JSON thread",
    refusal: unparsable,
    unref: true,
  });

  async parse(text: string, hashFor?: HashedRequest): Promise<JsonRead> {
    const answer = await this.queue.run({ text, maxValues: maxJsonValues, ...(hashFor ? { hashFor } : {}) });
    if ("tooMany" in answer) throw tooManyValues(maxJsonValues);
    return answer;
  }

  close(): Promise<void> {
    return this.queue.close();
  }
}

/** Fastify's answer to JSON it cannot read: 400, with what was wrong. */
function unparsable(why: string): Error {
  return Object.assign(new Error(`the request body is not valid JSON: ${why}`), {
    statusCode: 400,
    code: "FST_ERR_CTP_INVALID_JSON",
  });
}

function tooManyValues(max: number): RunyardError {
  return new RunyardError("INVALID_INPUT", `the request body holds more than ${max} JSON values`, {
    hint: "Send fewer fields, items or variables; pass bulk data as a file or an artifact.",
  });
}
