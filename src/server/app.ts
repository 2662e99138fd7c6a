import fastifySwagger from "@fastify/swagger";
import fastifyWebsocket from "@fastify/websocket";
import Fastify, { type FastifyInstance } from "fastify";
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { maxRunnerMessageBytes } from "../core/protocol.js";
import { authHook } from "./auth.js";
import type { ServerDeps } from "./deps.js";
import { errorHandler, errorResponses, jsonResponse, notFoundHandler } from "./error-responses.js";
import { storeTooNewHook } from "./fleet/schema-watch.js";
import { httpHeadersHook } from "./http-headers.js";
import { idempotencyHooks } from "./idempotency.js";
import { RefusedLogins } from "./identity/refused-logins.js";
import { readJsonBodiesOffTheLoop } from "./json-body.js";
import { metricsRoutes, ServerMetrics } from "./metrics.js";
import { openApiOptions, openApiRoute, publicRoute } from "./openapi.js";
import { agentRoutes } from "./routes/agents.js";
import { approvalRoutes } from "./routes/approvals.js";
import { artifactRoutes } from "./routes/artifacts.js";
import { auditRoutes } from "./routes/audit.js";
import { authRoutes } from "./routes/auth.js";
import { botHistoryRoutes } from "./routes/bot-history.js";
import { botHookRoute } from "./routes/bot-hook.js";
import { botTenantAlertRoutes } from "./routes/bot-tenant-alerts.js";
import { botRoutes } from "./routes/bots.js";
import { budgetRoutes } from "./routes/budgets.js";
import { fleetBotCallRoute } from "./routes/fleet-bot-call.js";
import { forgeRoutes } from "./routes/forges.js";
import { hookRoutes } from "./routes/hooks.js";
import { orchestratorJobRoutes } from "./routes/orchestrator-jobs.js";
import { retryRoutes } from "./routes/retry.js";
import { runDiffRoutes } from "./routes/run-diff.js";
import { runLogRoutes } from "./routes/run-log.js";
import { runPublishRoutes } from "./routes/run-publish.js";
import { runnerSocketRoute } from "./routes/runner-socket.js";
import { runnerRoutes } from "./routes/runners.js";
import { runRoutes } from "./routes/runs.js";
import { scheduleRoutes } from "./routes/schedules.js";
import { secretRoutes } from "./routes/secrets.js";
import { tokenRoutes } from "./routes/tokens.js";
import { usageRoutes } from "./routes/usage.js";
import { userRoutes } from "./routes/users.js";
import { validateRoutes } from "./routes/validate.js";
import { workflowPromoteRoute } from "./routes/workflow-promote.js";
import { workflowRoutes } from "./routes/workflows.js";
import { webUiRoutes } from "./web-ui.js";

/** Most routes' body cap (`POST /api/runs`: `runBodyLimit`): big bodies parsed on the loop would stall it. */
const defaultBodyLimit = 1024 * 1024;

const Health = z.object({
  ok: z.literal(true),
  version: z.string(),
  replica: z.string().describe("the server replica that answered"),
  leader: z.boolean().describe("whether it leads the fleet (lease expiry, adopting runs of dead replicas)"),
  database: z.enum(["ok", "unreachable"]).describe("whether this replica reaches its database"),
});

const Starting = Health.extend({
  ok: z.literal(false),
  waiting_for: z.string().describe("what the server waits for before it takes work, e.g. its local runner"),
});

const Ready = z.object({
  ok: z.literal(true),
  database: z.literal("ok"),
});

const NotReady = z.object({
  ok: z.literal(false),
  database: z.enum(["ok", "unreachable"]).describe("whether this replica reaches its database"),
  waiting_for: z.string().describe("what the replica waits for before it takes work"),
});

/** The HTTP API (tests use `app.inject()`); each route's zod schemas validate, serialize and document it. */
export function buildApp(deps: ServerDeps): FastifyInstance {
  const app = Fastify({ logger: false, bodyLimit: defaultBodyLimit });
  // A large JSON body is read on a thread of its own, never holding the other requests.
  readJsonBodiesOffTheLoop(app);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest("principal", undefined);
  app.decorateRequest("runnerToken", undefined);
  app.decorateRequest("idempotencyClaim", undefined);
  app.decorateRequest("idempotencyRequestHash", undefined);
  // Before the hooks below: its own onRequest hook marks WebSocket upgrades, so an upgrade the
  // token check refuses still has its socket closed after the 401 (else it would hang open).
  app.register(fastifyWebsocket, {
    // Past it, the socket closes with 1009 ("message too big") before the message is read.
    options: { maxPayload: maxRunnerMessageBytes },
    // A message past maxPayload or a broken frame closes this runner's socket, not the server.
    errorHandler: (error, socket) => {
      deps.logger.warn({ err: error }, "runner socket error");
      // ws is closing it with 1009 already: its close frame tells the runner why.
      if ((error as { code?: string }).code === "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH") return;
      socket.terminate();
    },
  });
  app.after(() => {
    // First: security headers on every answer, and CORS preflights answered before any token check.
    app.addHook("onRequest", httpHeadersHook(deps.corsOrigins));
    app.addHook("onRequest", authHook(deps.store, deps.sessions, deps.revocations.tokens));
    // A replica a newer runyard's migration left behind answers reads only (docs/upgrading.md).
    const storeTooNew = deps.storeTooNew;
    if (storeTooNew) app.addHook("onRequest", storeTooNewHook(storeTooNew));
    // Creating routes (`config: idempotentRoute`): a key answered before replays, past caps and schema.
    const idempotency = idempotencyHooks(deps.store.idempotencyKeys, deps.idempotency, deps.logger);
    app.addHook("preValidation", idempotency.preValidation);
    app.addHook("preHandler", idempotency.preHandler);
    app.addHook("onSend", idempotency.onSend);
  });
  app.setErrorHandler(errorHandler(deps.logger, defaultBodyLimit));
  app.setNotFoundHandler(notFoundHandler);

  const metrics = new ServerMetrics(deps.store, deps.bus, {
    id: deps.replica.id,
    isLeader: () => deps.replica.isLeader,
    runsCarried: () => deps.runs.activeRuns,
    runsParked: () => deps.runs.parkedRuns,
    runnersConnected: () => deps.hub.connectedRunners,
    scheduleTicks: () => deps.scheduler.ticks(),
  });
  app.addHook("onClose", async () => metrics.close());
  const refusedLogins = new RefusedLogins(deps.store.audit, deps.logger, metrics.loginRefused);
  app.addHook("onClose", async () => refusedLogins.close());

  // Routes are registered after the OpenAPI plugin, which sees each of them as it is added.
  app.register(fastifySwagger, openApiOptions(deps.version));
  app.register(async (api) => {
    openApiRoute(api);
    api.withTypeProvider<ZodTypeProvider>().get(
      "/health",
      {
        schema: {
          operationId: "getHealth",
          summary: "Liveness",
          description: "No token needed.",
          tags: ["server"],
          security: publicRoute,
          response: {
            ...errorResponses(),
            200: jsonResponse("the server is up (its body says whether it reaches its database)", Health),
            503: jsonResponse("the server is starting: it says what it waits for", Starting),
          },
        },
      },
      async (_request, reply) => {
        const health = {
          version: deps.version,
          replica: deps.replica.id,
          leader: deps.replica.isLeader,
          database: await databaseState(deps),
        };
        const waiting = deps.waitingFor?.();
        if (waiting) return reply.code(503).send({ ...health, ok: false as const, waiting_for: waiting });
        return { ...health, ok: true as const };
      },
    );
    api.withTypeProvider<ZodTypeProvider>().get(
      "/health/ready",
      {
        schema: {
          operationId: "getReadiness",
          summary: "Readiness",
          description:
            "200 while this replica can take work: it reaches its database and waits for nothing; 503 otherwise (a load balancer or Kubernetes readiness probe sends it no traffic meanwhile). `/health` is the liveness answer. No token needed.",
          tags: ["server"],
          security: publicRoute,
          response: {
            ...errorResponses(),
            200: jsonResponse("ready", Ready),
            503: jsonResponse(
              "not ready: the database cannot be reached, or the server is starting",
              NotReady,
            ),
          },
        },
      },
      async (_request, reply) => {
        const database = await databaseState(deps);
        const tooNew = deps.storeTooNew?.();
        const waiting = tooNew ? `an upgrade of this replica: ${tooNew.message}` : deps.waitingFor?.();
        if (database === "ok" && !waiting) return { ok: true as const, database };
        return reply.code(503).send({
          ok: false as const,
          database,
          waiting_for: waiting ?? "the database",
        });
      },
    );
    runRoutes(api, deps, metrics.streams);
    approvalRoutes(api, deps);
    runLogRoutes(api, deps);
    retryRoutes(api, deps);
    artifactRoutes(api, deps);
    runnerRoutes(api, deps);
    runnerSocketRoute(api, deps);
    secretRoutes(api, deps);
    authRoutes(api, deps, refusedLogins);
    userRoutes(api, deps);
    tokenRoutes(api, deps);
    auditRoutes(api, deps, refusedLogins);
    budgetRoutes(api, deps);
    usageRoutes(api, deps);
    agentRoutes(api, deps);
    runDiffRoutes(api, deps);
    runPublishRoutes(api, deps);
    botRoutes(api, deps);
    botHistoryRoutes(api, deps);
    botTenantAlertRoutes(api, deps);
    botHookRoute(api, deps);
    fleetBotCallRoute(api, deps);
    orchestratorJobRoutes(api, deps);
    validateRoutes(api, deps);
    workflowRoutes(api, deps);
    workflowPromoteRoute(api, deps);
    scheduleRoutes(api, deps);
    hookRoutes(api, deps);
    forgeRoutes(api, deps);
    metricsRoutes(api, metrics);
  });
  app.register(webUiRoutes);
  return app;
}

/** Whether the store answers a trivial read within a second. */
async function databaseState(deps: ServerDeps): Promise<"ok" | "unreachable"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"unreachable">((resolve) => {
    timer = setTimeout(() => resolve("unreachable"), 1000);
  });
  try {
    return await Promise.race([deps.store.events.lastSeq("health-check").then(() => "ok" as const), timeout]);
  } catch {
    return "unreachable";
  } finally {
    clearTimeout(timer);
  }
}
