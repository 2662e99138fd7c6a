import { Readable } from "node:stream";
import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunEvent } from "../../core/events.js";
import type { RunEventsRepo } from "../../store/index.js";
import type { ServerDeps } from "../deps.js";
import { protectedErrorResponses, protectedResponses } from "../error-responses.js";
import { bearerOrQueryToken } from "../openapi.js";
import { RunParams, visibleRun } from "./visible-run.js";

/**
 * A run's log for a browser (issue 11): a huge log is read a page at a time, newest first, and
 * downloaded as a stream, so neither the server nor the page ever holds all of it.
 */

const EventPageQuery = z.strictObject({
  before: z.coerce
    .number()
    .int()
    .positive()
    .optional()
    .describe("only events with a seq below this (the `first_seq` of the page shown); absent: the newest"),
  after: z.coerce.number().int().nonnegative().optional().describe("only events with a seq above this"),
  limit: z.coerce.number().int().min(1).max(1000).default(200).describe("events at most"),
});

const EventPage = z.object({
  events: z.array(RunEvent).describe("in seq order: the newest `limit` events in the window"),
  first_seq: z.number().int().nullable().describe("the lowest seq of `events`: the next page's `before`"),
  more_before: z.boolean().describe("whether older events exist (ask with `before=first_seq`)"),
  last_seq: z.number().int().describe("the run's highest stored seq: follow the SSE stream after it"),
});

const LogQuery = z.strictObject({
  access_token: z.string().optional().describe("a stream token of this run, for a plain download link"),
});

/** Events read per query while streaming a log: at most 64 KiB of output each. */
const logPageEvents = 100;

/** The output of a run as text, read from the store a page at a time. */
async function* logText(events: RunEventsRepo, runId: string): AsyncGenerator<string> {
  let after = 0;
  for (;;) {
    const page = await events.list(runId, { after, limit: logPageEvents });
    if (page.length === 0) return;
    let text = "";
    for (const event of page) if (event.type === "step.output") text += event.data;
    if (text) yield text;
    after = page.at(-1)!.seq;
    if (page.length < logPageEvents) return;
  }
}

export function runLogRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/runs/:id/events/page",
    {
      schema: {
        operationId: "listRunEventPage",
        summary: "One page of a run's stored events, newest first",
        description:
          "The newest `limit` events (below `before` when given), in seq order: a page shows a log's tail at once and reads older output on demand, then follows `GET /api/runs/:id/events?after=last_seq`.",
        tags: ["runs"],
        params: RunParams,
        querystring: EventPageQuery,
        response: protectedResponses(200, "the page", EventPage, 400, 404),
      },
    },
    async (request) => {
      const { id } = request.params;
      const run = await visibleRun(deps, request, id);
      const { before, after, limit } = request.query;
      const events = await deps.store.events.list(id, {
        before: before ?? run.last_seq + 1,
        limit,
        ...(after !== undefined ? { after } : {}),
      });
      const first = events[0]?.seq ?? null;
      const older =
        first !== null && first > (after ?? 0) + 1
          ? (await deps.store.events.list(id, { before: first, limit: 1, ...(after ? { after } : {}) }))
              .length > 0
          : false;
      return {
        events,
        first_seq: first,
        more_before: older,
        last_seq: Math.max(run.last_seq, events.at(-1)?.seq ?? 0),
      };
    },
  );

  api.get(
    "/api/runs/:id/log",
    {
      schema: {
        operationId: "downloadRunLog",
        summary: "A run's output as plain text (a download)",
        description:
          "Every step's stdout and stderr in seq order, streamed from the store a page at a time (`content-disposition: attachment`). Takes a stream token as `?access_token=` too, so a plain link downloads it.",
        tags: ["runs"],
        security: bearerOrQueryToken,
        params: RunParams,
        querystring: LogQuery,
        response: {
          200: {
            description: "the output, UTF-8 text",
            content: { "text/plain": { schema: z.string() } },
          },
          ...protectedErrorResponses(400, 404),
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      await visibleRun(deps, request, id);
      const safeName = id.replace(/[^A-Za-z0-9._-]/g, "_");
      reply
        .header("content-type", "text/plain; charset=utf-8")
        .header("content-disposition", `attachment; filename="${safeName}.log"`)
        .header("cache-control", "no-store");
      // A stream, not a string: the route's text schema only describes it.
      return reply.send(Readable.from(logText(deps.store.events, id)) as unknown as string);
    },
  );
}
