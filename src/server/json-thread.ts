/**
 * The JSON thread: reads large JSON texts (HTTP bodies, runners' messages) on a thread of its own,
 * so that parsing a member's multi-megabyte text never holds the event loop, and hands a text back
 * only when it holds at most `maxJsonValues` values (json-body.ts says why).
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { RunyardError } from "../core/errors.js";
import type { HashedRequest } from "./idempotency-hash.js";

const threadFile = new URL("./json-body-thread.js", import.meta.url);

/** Bodies larger than this are read on the JSON thread. */
export const threadMinBytes = 64 * 1024;
/**
 * The most values (objects, arrays, strings, numbers…) a large JSON body may hold: a submit holds
 * at most 1,000 variables and 1,000 environment entries, a workflow is one string, a bot's code
 * one base64 string.
 */
export const maxJsonValues = 50_000;

export interface JsonRequest {
  id: number;
  text: string;
  maxValues: number;
  /** The request to hash with the body for its `Idempotency-Key` (idempotency-hash.ts), if it has one. */
  hashFor?: HashedRequest;
}

export type JsonAnswer = { id: number } & (
  | { value: unknown; hash?: string }
  | { tooMany: true }
  | { failed: string }
);

/** A body read, with its request's hash when one was asked for. */
export interface JsonRead {
  value: unknown;
  hash?: string;
}

interface Waiting {
  text: string;
  hashFor: HashedRequest | undefined;
  resolve: (read: JsonRead) => void;
  reject: (error: Error) => void;
}

/** One thread reading large bodies in order; started on first use, and again after it dies. */
export class JsonBodyThread {
  /**
   * Whether the thread can start: tests that build the server from its TypeScript source have no
   * built thread file, and read on the event loop instead.
   */
  static get available(): boolean {
    return existsSync(fileURLToPath(threadFile));
  }

  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Waiting>();

  parse(text: string, hashFor?: HashedRequest): Promise<JsonRead> {
    return new Promise((resolve, reject) => this.send({ text, hashFor, resolve, reject }));
  }

  async close(): Promise<void> {
    const thread = this.worker;
    this.worker = undefined;
    await thread?.terminate();
  }

  private send(waiting: Waiting): void {
    this.worker ??= this.start();
    const id = this.nextId++;
    this.pending.set(id, waiting);
    this.worker.postMessage({
      id,
      text: waiting.text,
      maxValues: maxJsonValues,
      ...(waiting.hashFor ? { hashFor: waiting.hashFor } : {}),
    } satisfies JsonRequest);
  }

  private start(): Worker {
    const thread = new Worker(threadFile, {
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    });
    thread.on("message", (answer: JsonAnswer) => {
      const waiting = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      if (!waiting) return;
      if ("value" in answer) waiting.resolve({ value: answer.value, hash: answer.hash });
      else if ("tooMany" in answer) waiting.reject(tooManyValues(maxJsonValues));
      else waiting.reject(unparsable(answer.failed));
    });
    // The thread died (out of its memory): the body it was reading is refused, the rest go on.
    const lost = (why: string) => {
      if (this.worker !== thread) return;
      this.worker = undefined;
      const [head, ...rest] = this.pending.values();
      this.pending.clear();
      head?.reject(unparsable(why));
      for (const waiting of rest) this.send(waiting);
    };
    thread.on("error", (error) => lost(error.message));
    thread.on("exit", (code) => lost(`the JSON thread exited with code ${code}`));
    // An idle thread does not keep a stopping process alive.
    thread.unref();
    return thread;
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
