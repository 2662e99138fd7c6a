/**
 * The body of the thread that reads large JSON request bodies (see json-body.ts): one answer out
 * for each message in (`JsonRequest`), for as long as the server lives.
 */
import secureJson from "secure-json-parse";
import { requestHash } from "./idempotency-hash.js";
import type { JsonAnswer, JsonRequest } from "./json-thread.js";
import { holdsMoreThan } from "./json-values.js";
import { answerRequests } from "./thread-queue.js";

answerRequests(({ text, maxValues, hashFor }: JsonRequest): JsonAnswer => {
  // As Fastify reads JSON: a `__proto__` or `constructor.prototype` key is refused.
  const value: unknown = secureJson.parse(text, undefined, {
    protoAction: "error",
    constructorAction: "error",
  });
  if (holdsMoreThan(value, maxValues)) return { tooMany: true };
  // A request with an Idempotency-Key is hashed here too, not on the event loop.
  return hashFor ? { value, hash: requestHash(hashFor, value) } : { value };
});
