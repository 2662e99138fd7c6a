import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { RunyardError } from "../../core/errors.js";

/** What a request to an address with no secret is checked against: random, held by nobody. */
export const unheldSecret = randomBytes(32).toString("hex");

/**
 * Registers `routes` in a scope of their own whose bodies stay the bytes sent, whatever their
 * type, up to `bodyLimit`: a signature covers those bytes, not JSON parsed from them.
 */
export function rawBodyScope(
  app: FastifyInstance,
  bodyLimit: number,
  routes: (scope: FastifyInstance) => void,
): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser("*", { parseAs: "buffer", bodyLimit }, (_request, body, done) =>
      done(null, body),
    );
    routes(scope);
  });
}

/** A signed delivery's body read as JSON; one that is not JSON is refused with `hint`. */
export function deliveryJson(raw: Buffer, hint: string): unknown {
  try {
    return JSON.parse(raw.toString("utf8"));
  } catch {
    throw new RunyardError("INVALID_INPUT", "the delivery's body is not JSON", { hint });
  }
}
