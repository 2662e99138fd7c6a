import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import { z } from "zod";
import { type ErrorCode, errorTable, RunyardError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { quoted, quotedPrefixLength } from "../core/quoted-input.js";
import { connectionLost, storeUnavailable } from "../store/connection-loss.js";
import { apiSchemas } from "./api-schemas.js";

const errorCodes = Object.keys(errorTable) as [ErrorCode, ...ErrorCode[]];

/** Every error the API answers: a stable code (src/core/errors.ts), a message and a hint. */
export const ErrorBody = z.object({
  status: z
    .literal("failure")
    .optional()
    .describe(
      "QUOTA_EXCEEDED answers and every error of `POST /jobs` carry it: the orchestrator API's `{status: failure, error}` shape",
    ),
  error: z.object({
    code: z.enum(errorCodes),
    message: z.string(),
    hint: z.string().describe("What to do about it."),
    details: z
      .unknown()
      .optional()
      .describe(
        "More about the error: `[{path, message}]` for INVALID_INPUT from request validation, `[{file, line, col, message, hint}]` for WORKFLOW_INVALID.",
      ),
  }),
});
apiSchemas.add(ErrorBody, { id: "Error" });

const errorStatuses = {
  400: "invalid request: the message names the field (details lists each problem)",
  401: "no token, or not a valid one; the hint says how to send one",
  403: "the token may not do this (a runner token; a route for admins; a tenant's token on a server-wide route)",
  404: "no such run or secret (or not one of this tenant's)",
  409: "the object is not in a state that allows this; on a route that takes `Idempotency-Key`, also IDEMPOTENCY_KEY_REUSED (the key came with another request) or IDEMPOTENCY_KEY_IN_USE (its first request is still being answered; Retry-After says when to send it again)",
  410: "gone for good: a hook whose maker was removed (TRIGGER_OWNER_REMOVED); the hint says who makes it again",
  413: "the request body is larger than this route takes (BODY_TOO_LARGE)",
  429: "too many failed attempts (RATE_LIMITED; the Retry-After header says how many seconds to wait), or a quota reached (QUOTA_EXCEEDED; nothing was stored), or an agent spend budget spent (BUDGET_EXCEEDED)",
  500: "a bug in runyard; the server log has the details",
  502: "the bot behind the route did not answer (BOT_HOOK_FAILED)",
  503: "the server cannot reach its database right now (STORE_UNAVAILABLE; a restart or failover): send it again after the Retry-After seconds",
} as const;
type ErrorStatus = keyof typeof errorStatuses;

/** A route's answer: `schema` as JSON, for /openapi.json and the reply's type. */
export function jsonResponse<S extends z.ZodType>(description: string, schema: S) {
  return { description, content: { "application/json": { schema } } };
}

type ErrorResponse = ReturnType<typeof jsonResponse<typeof ErrorBody>>;

/** The error responses of a route: `{error: {code, message, hint}}` under each status, 500 and 503. */
export function errorResponses<S extends ErrorStatus>(
  ...statuses: S[]
): Record<S | 500 | 503, ErrorResponse> {
  const all = [...new Set<S | 500 | 503>([...statuses, 500, 503])];
  const response = (status: ErrorStatus) => jsonResponse(errorStatuses[status], ErrorBody);
  return Object.fromEntries(all.map((status) => [status, response(status)])) as Record<
    S | 500 | 503,
    ErrorResponse
  >;
}

/** The error responses of a route that needs a token: 401 and 403 too. */
export function protectedErrorResponses<S extends ErrorStatus>(...statuses: S[]) {
  return errorResponses<S | 401 | 403>(401, 403, ...statuses);
}

/** The responses of a route that needs a token: `schema` as JSON under `status`, and its errors. */
export function protectedResponses<C extends 200 | 201 | 202, J extends z.ZodType, S extends ErrorStatus>(
  status: C,
  description: string,
  schema: J,
  ...errors: S[]
) {
  const answer = { [status]: jsonResponse(description, schema) } as Record<
    C,
    ReturnType<typeof jsonResponse<J>>
  >;
  return { ...answer, ...protectedErrorResponses(...errors) };
}

type ErrorReply = { status: number; error: z.infer<typeof ErrorBody>["error"] };

/** Turns anything a route throws into the error body, with its status. */
export function errorHandler(logger: Logger, defaultBodyLimit: number) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply): void => {
    const known = errorReply(error, request, defaultBodyLimit);
    if (known) {
      const retryAfter =
        known.error.code === "STORE_UNAVAILABLE" ? storeRetryAfterSeconds : retryAfterSeconds(error);
      if (retryAfter !== undefined) reply.header("retry-after", String(retryAfter));
      // Its answer says only that the database is away; why is for the operator.
      if (known.error.code === "STORE_UNAVAILABLE")
        logger.warn({ err: error }, "request answered 503: the database is away");
      // `POST /jobs`' shape for a quota and errors its handler did not answer (schema, Idempotency-Key):
      // `{"status":"failure","error":{...}}`.
      const failure =
        known.error.code === "QUOTA_EXCEEDED" || request.routeOptions.url === "/jobs"
          ? { status: "failure" as const }
          : {};
      reply.code(known.status).send({ ...failure, error: known.error });
      return;
    }
    logger.error({ err: error }, "request failed");
    reply
      .code(500)
      .send({ error: { code: "INTERNAL", message: "internal error", hint: errorTable.INTERNAL.hint } });
  };
}

/** `Retry-After` while the database is away: a restart takes seconds, a managed failover a minute or two. */
export const storeRetryAfterSeconds = 2;

/** Errors that say when to try again carry the wait in their details; it goes out as `Retry-After` too. */
const waitingCodes: ReadonlySet<ErrorCode> = new Set(["RATE_LIMITED", "IDEMPOTENCY_KEY_IN_USE"]);

function retryAfterSeconds(error: unknown): number | undefined {
  if (!(error instanceof RunyardError) || !waitingCodes.has(error.code)) return undefined;
  const details = error.details as { retry_after_seconds?: unknown } | undefined;
  return typeof details?.retry_after_seconds === "number" ? details.retry_after_seconds : undefined;
}

function errorReply(
  error: FastifyError,
  request: FastifyRequest,
  defaultBodyLimit: number,
): ErrorReply | undefined {
  if (error instanceof RunyardError) return fromRunyardError(error);
  // A driver's error that did not pass through the store's connections (a fleet message, say).
  if (connectionLost(error)) return fromRunyardError(storeUnavailable(error, "unknown"));
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") {
    const limit = request.routeOptions.bodyLimit ?? defaultBodyLimit;
    return fromRunyardError(
      new RunyardError(
        "BODY_TOO_LARGE",
        `the request body is larger than the ${formatMiB(limit)} that ${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]} takes`,
      ),
    );
  }
  if (hasZodFastifySchemaValidationErrors(error)) {
    const where =
      error.validationContext === "querystring" ? "query" : (error.validationContext ?? "request");
    // What was sent is echoed short (a 600 KB key, 100,000 bad items): the first problems, each cut short.
    const problems = error.validation.slice(0, maxEchoedProblems).map((issue) => ({
      path: clipped(issue.instancePath.slice(1).replaceAll("/", ".") || where),
      message: clipped(issue.message ?? ""),
    }));
    // Unknown fields are refused by name (a misspelt field would otherwise be dropped unseen).
    const unknown = error.validation
      .flatMap((issue) => (issue.keyword === "unrecognized_keys" ? unknownKeys(issue.params) : []))
      .slice(0, maxEchoedProblems);
    return fromRunyardError(
      new RunyardError(
        "INVALID_INPUT",
        `invalid ${where}: ${problems.map((p) => `${p.path}: ${p.message}`).join("; ")}`,
        {
          details: problems,
          ...(unknown.length > 0
            ? {
                hint: `Remove ${unknown.map((key) => quoted(key)).join(", ")} (or check the spelling): ${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]} takes only the fields /openapi.json lists.`,
              }
            : {}),
        },
      ),
    );
  }
  // Fastify's own client errors (unparsable JSON, unsupported media type) keep their status.
  const status = error.statusCode ?? 500;
  if (status >= 500) return undefined;
  return {
    status,
    error: { code: "INVALID_INPUT", message: error.message, hint: "Check the request body and parameters." },
  };
}

/** The most problems of one request an answer lists. */
const maxEchoedProblems = 20;

/** A path or message of a request's problem, cut to a short start when what was sent is long. */
function clipped(text: string): string {
  return text.length <= 2 * quotedPrefixLength ? text : `${text.slice(0, 2 * quotedPrefixLength)}…`;
}

function unknownKeys(params: unknown): string[] {
  const keys = (params as { keys?: unknown } | undefined)?.keys;
  return Array.isArray(keys) ? keys.map(String) : [];
}

function fromRunyardError(error: RunyardError): ErrorReply {
  return {
    status: error.status,
    error: {
      code: error.code,
      message: error.message,
      hint: error.hint,
      ...(error.details ? { details: error.details } : {}),
    },
  };
}

/** Any unknown path: 404 with the error body. */
export function notFoundHandler(request: FastifyRequest, reply: FastifyReply): void {
  reply.code(404).send({
    error: {
      code: "NOT_FOUND",
      message: `no route ${request.method} ${request.url.split("?")[0]}`,
      hint: "See /openapi.json for the routes.",
    },
  });
}

function formatMiB(bytes: number): string {
  const mib = bytes / (1024 * 1024);
  return Number.isInteger(mib) ? `${mib} MiB` : `${bytes} bytes`;
}
