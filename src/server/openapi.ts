import { z } from "zod";
import { RunEvent } from "../core/events.js";
import { CreateTokenBody } from "./routes/runners.js";
import { ListRunsQuery, SubmitRunBody } from "./routes/runs.js";

const ErrorBody = z.object({
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }),
});

const json = (schema: z.ZodType) => ({
  "application/json": { schema: z.toJSONSchema(schema, { io: "input" }) },
});
const errors = { "4XX": { description: "error with code, message and hint", content: json(ErrorBody) } };

/** The OpenAPI document, generated from the same zod schemas the routes validate with. */
export function openApiDocument(version: string): Record<string, unknown> {
  const queryParams = Object.entries(ListRunsQuery.shape).map(([name, schema]) => ({
    name,
    in: "query",
    required: false,
    schema: z.toJSONSchema(schema as z.ZodType, { io: "input" }),
  }));
  return {
    openapi: "3.1.0",
    info: { title: "runyard", version, description: "Self-hosted runner platform API." },
    components: {
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
      schemas: { RunEvent: z.toJSONSchema(RunEvent), Error: z.toJSONSchema(ErrorBody) },
    },
    security: [{ bearer: [] }],
    paths: {
      "/health": {
        get: {
          summary: "liveness; no token needed",
          security: [],
          responses: { 200: { description: "ok" } },
        },
      },
      "/api/runs": {
        post: {
          summary: "submit a workflow run",
          requestBody: { content: json(SubmitRunBody) },
          responses: { 201: { description: "{run_id}" }, ...errors },
        },
        get: {
          summary: "list runs, newest first",
          parameters: queryParams,
          responses: { 200: { description: "{runs, next}" } },
        },
      },
      "/api/runs/{id}": {
        get: { summary: "one run", responses: { 200: { description: "the run" }, ...errors } },
      },
      "/api/runs/{id}/cancel": {
        post: { summary: "cancel a run", responses: { 200: { description: "{run_id, status}" } } },
      },
      "/api/runs/{id}/events": {
        get: {
          summary:
            "the run's events as Server-Sent Events (id: seq, event: type); resumes after Last-Event-ID or ?after=; the one route that takes ?access_token=",
          responses: {
            200: { description: "text/event-stream of RunEvent", content: { "text/event-stream": {} } },
            204: { description: "the run has ended and has no event after the cursor" },
          },
        },
      },
      "/run-status": {
        get: { summary: "seed 002 run snapshot (?run_id=)", responses: { 200: { description: "snapshot" } } },
      },
      "/api/runners": {
        get: { summary: "connected and known runners", responses: { 200: { description: "runners" } } },
      },
      "/api/tokens": {
        post: {
          summary: "create a token (admin)",
          requestBody: { content: json(CreateTokenBody) },
          responses: { 201: { description: "token" } },
        },
      },
    },
  };
}
