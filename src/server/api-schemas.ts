import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { RunyardError } from "../core/errors.js";
import { ErrorInfo, RunEvent, StepSummary } from "../core/events.js";
import { quoted, quotedPrefixLength } from "../core/quoted-input.js";

/**
 * Schemas `/openapi.json` names as components (`#/components/schemas/<id>`) instead of repeating
 * them inline; clients generated from the document get a named type for each. Route modules add
 * their own response schemas.
 */
export const apiSchemas = z.registry<{ id: string }>();
apiSchemas.add(RunEvent, { id: "RunEvent" });
apiSchemas.add(StepSummary, { id: "StepSummary" });
apiSchemas.add(ErrorInfo, { id: "ErrorInfo" });

/**
 * The longest name a request may carry (a saved workflow's, a hook's, a tenant, a runner group or
 * label, a file name): checked by the schema before the name is looked up, matched or quoted in
 * an error, so a name of 600 KB costs nothing but its refusal.
 */
export const maxNameLength = 200;

/** The query of a route that takes no parameters: any is refused by name, like unknown body fields. */
export const NoQuery = z.strictObject({});

/**
 * For a POST that takes no fields (cancel, stream token, logout): no body, or `{}`. Any field is
 * refused by name, as on every other route, rather than silently dropped. A hook, not a body
 * schema, so /openapi.json and clients built from it keep the body optional.
 */
export async function refuseBodyFields(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (body === undefined || body === null) return;
  const fields = typeof body === "object" && !Array.isArray(body) ? Object.keys(body) : undefined;
  if (fields?.length === 0) return;
  const route = `${request.method} ${request.routeOptions.url ?? request.url.split("?")[0]}`;
  const named = fields
    ?.slice(0, 20)
    .map((key) => quoted(key))
    .join(", ");
  throw new RunyardError(
    "INVALID_INPUT",
    fields
      ? `invalid body: Unrecognized key${fields.length > 1 ? "s" : ""}: ${named}`
      : "invalid body: expected no body, or {}",
    {
      hint: `${route} takes no fields: send no body, or {}${named ? `; remove ${named}` : ""}.`,
      details: fields
        ? fields.slice(0, 20).map((key) => ({
            path: key.length > quotedPrefixLength ? quoted(key) : key,
            message: "unrecognized key",
          }))
        : [],
    },
  );
}
