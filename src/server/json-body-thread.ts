/**
 * The body of the thread that reads large JSON request bodies (see json-body.ts): one answer out
 * for each message in (`JsonRequest`), for as long as the server lives.
 */
import { parentPort } from "node:worker_threads";
import secureJson from "secure-json-parse";
import { requestHash } from "./idempotency-hash.js";
import type { JsonAnswer, JsonRequest } from "./json-thread.js";

/** Whether `value` holds more than `max` values (objects, arrays and what they hold); stops early. */
function holdsMoreThan(value: unknown, max: number): boolean {
  let count = 0;
  const waiting: unknown[] = [value];
  while (waiting.length > 0) {
    const next = waiting.pop();
    count += 1;
    if (count > max) return true;
    if (next !== null && typeof next === "object")
      for (const inner of Array.isArray(next) ? next : Object.values(next)) waiting.push(inner);
  }
  return false;
}

parentPort?.on("message", ({ id, text, maxValues, hashFor }: JsonRequest) => {
  let answer: JsonAnswer;
  try {
    // As Fastify reads JSON: a `__proto__` or `constructor.prototype` key is refused.
    const value: unknown = secureJson.parse(text, undefined, {
      protoAction: "error",
      constructorAction: "error",
    });
    if (holdsMoreThan(value, maxValues)) answer = { id, tooMany: true };
    // A request with an Idempotency-Key is hashed here too, not on the event loop.
    else answer = hashFor ? { id, value, hash: requestHash(hashFor, value) } : { id, value };
  } catch (error) {
    answer = { id, failed: error instanceof Error ? error.message : String(error) };
  }
  parentPort?.postMessage(answer);
});
