import Fastify, { type FastifyInstance } from "fastify";
import { RunyardError } from "../core/errors.js";
import { authHook } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { openApiDocument } from "./openapi.js";
import { runnerRoutes } from "./routes/runners.js";
import { runRoutes } from "./routes/runs.js";

/** The HTTP API; tests drive it with `app.inject()`. */
export function buildApp(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: 16 * 1024 * 1024 });
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", authHook(deps.store));

  app.setErrorHandler((error, _request, reply) => {
    if (error instanceof RunyardError) {
      reply.code(error.status).send({
        error: {
          code: error.code,
          message: error.message,
          hint: error.hint,
          ...(error.details ? { details: error.details } : {}),
        },
      });
      return;
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status < 500) {
      reply.code(status).send({
        error: {
          code: "INVALID_INPUT",
          message: (error as Error).message,
          hint: "Check the request body and parameters.",
        },
      });
      return;
    }
    deps.logger.error({ err: error }, "request failed");
    reply
      .code(500)
      .send({ error: { code: "INTERNAL", message: "internal error", hint: "See the server log." } });
  });
  app.setNotFoundHandler((request, reply) => {
    reply.code(404).send({
      error: {
        code: "NOT_FOUND",
        message: `no route ${request.method} ${request.url.split("?")[0]}`,
        hint: "See /openapi.json for the routes.",
      },
    });
  });

  app.get("/health", async () => ({ ok: true, version: deps.version }));
  app.get("/openapi.json", async () => openApiDocument(deps.version));
  runRoutes(app, deps);
  runnerRoutes(app, deps);
  return app;
}
