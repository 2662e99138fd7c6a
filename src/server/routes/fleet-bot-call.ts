import type { FastifyInstance } from "fastify";
import { botRelayPath } from "../auth.js";
import { RelayedCall, type ServerDeps } from "../deps.js";
import { botRelayBodyLimit, botRelayHeader } from "../fleet/bot-relay.js";

/**
 * `POST /api/fleet/bot-call`: another replica of this database passes a bot call (a webhook it
 * checked, a log download it authorized) to the runner socket held here. Signed with the
 * replicas' shared server key, fresh and used once; not part of the public API.
 */
export function fleetBotCallRoute(app: FastifyInstance, deps: ServerDeps): void {
  app.register(async (scope) => {
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser(
      "application/json",
      { parseAs: "string", bodyLimit: botRelayBodyLimit },
      (_request, body, done) => done(null, body),
    );
    scope.post(
      botRelayPath,
      { bodyLimit: botRelayBodyLimit, schema: { hide: true } },
      async (request, reply) => {
        const body = typeof request.body === "string" ? request.body : "";
        const header = request.headers[botRelayHeader];
        const verdict = await deps.botRelay.verify(typeof header === "string" ? header : undefined, body);
        if (verdict !== "ok") {
          return reply
            .code(401)
            .send({ error: { code: "UNAUTHORIZED", message: "not a call from a replica of this server" } });
        }
        const parsed = RelayedCall.safeParse(JSON.parse(body));
        if (!parsed.success) {
          return reply.code(400).send({ error: { code: "INVALID_REQUEST", message: parsed.error.message } });
        }
        const call = deps.botRelay.callHere(parsed.data);
        if (!call) {
          return reply
            .code(404)
            .send({ error: { code: "NOT_FOUND", message: "that runner is not connected here" } });
        }
        return reply.type("application/json").send(JSON.stringify(await call));
      },
    );
  });
}
