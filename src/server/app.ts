import Fastify, { type FastifyInstance } from "fastify";
import { RunyardError } from "../core/errors.js";
import { authHook } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { openApiDocument } from "./openapi.js";
import { runnerRoutes } from "./routes/runners.js";
import { runRoutes } from "./routes/runs.js";

/**
 * The largest request body most routes take; `POST /api/runs` takes more (`runBodyLimit`).
 * Bodies are parsed on the event loop, so the caps keep a few large ones from stalling it.
 */
const defaultBodyLimit = 1024 * 1024;

/** The HTTP API; tests drive it with `app.inject()`. */
export function buildApp(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: defaultBodyLimit });
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", authHook(deps.store));

  app.setErrorHandler((error, request, reply) => {
    if ((error as { code?: string }).code === "FST_ERR_CTP_BODY_TOO_LARGE") {
      const limit = request.routeOptions.bodyLimit ?? defaultBodyLimit;
      error = new RunyardError(
        "BODY_TOO_LARGE",
        `the request body is larger than the ${formatMiB(limit)} that ${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]} takes`,
      );
    }
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

function formatMiB(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return Number.isInteger(mib) ? `${mib} MiB` : `${bytes} bytes`;
}
