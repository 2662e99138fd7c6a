/**
 * The body of the thread that reads large JSON request bodies (see json-body.ts): one answer out
 * for each message in (`JsonRequest`), for as long as the server lives.
 */
import { parentPort } from "node:worker_threads";
import secureJson from "secure-json-parse";
import { requestHash } from "./idempotency-hash.js";
import type { JsonAnswer, JsonRequest } from "./json-thread.js";
import { holdsMoreThan } from "./json-values.js";

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
