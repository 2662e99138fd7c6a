/**
 * JSON request bodies. Fastify reads them with `JSON.parse` on the event loop: a member's 8 MB
 * submit of 400,000 empty variables held every other request (`/health`, event streams,
 * runners' heartbeats) for 0.3 s on a quiet machine and 3 s on a busy one, and a loop of them
 * held the server for all tenants. A body up to `threadMinBytes` is still read on the event loop
 * (it takes well under a millisecond); a larger one is read on a thread of its own, and comes back
 * only when it holds at most `maxJsonValues` values: the copy back then costs little, and
 * a body built to be costly is refused there.
 */
import type { FastifyInstance, FastifyRequest } from "fastify";
import { takesIdempotencyKey } from "./idempotency.js";
import { JsonBodyThread, threadMinBytes } from "./json-thread.js";

/**
 * Replaces Fastify's JSON body parser on `app`: small bodies as before, large ones on the thread.
 * The thread ends when the app closes.
 */
export function readJsonBodiesOffTheLoop(app: FastifyInstance): void {
  // Tests that build the app from its TypeScript source have no built thread to start: Fastify's
  // own parser stays (the built server, which every process test starts, reads on the thread).
  if (!JsonBodyThread.available) return;
  const thread = new JsonBodyThread();
  const onLoop = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser(
    "application/json",
    { parseAs: "string" },
    (
      request: FastifyRequest,
      body: string | Buffer,
      done: (error: Error | null, value?: unknown) => void,
    ) => {
      const text = typeof body === "string" ? body : body.toString("utf8");
      if (text.length <= threadMinBytes) {
        onLoop(request, text, done);
        return;
      }
      const hashFor = takesIdempotencyKey(request) ? { method: request.method, url: request.url } : undefined;
      thread.parse(text, hashFor).then(
        ({ value, hash }) => {
          request.idempotencyRequestHash = hash;
          done(null, value);
        },
        (error: Error) => done(error),
      );
    },
  );
  app.addHook("onClose", async () => thread.close());
}
