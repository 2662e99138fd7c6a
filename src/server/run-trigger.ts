import type { FastifyRequest } from "fastify";
import { RunyardError } from "../core/errors.js";
import { triggerHeader } from "../core/run-trigger.js";

/**
 * The trigger of a run a request submits: `manual` when the client says a person asked for it
 * (`X-Runyard-Trigger: manual`, which the CLI and the web UI send), else `api`. A client may not
 * claim a schedule, a webhook or a re-run: the server sets those itself.
 */
export function requestTrigger(request: FastifyRequest): "manual" | "api" {
  const said = request.headers[triggerHeader];
  if (said === undefined || said === "api") return "api";
  if (said === "manual") return "manual";
  throw new RunyardError(
    "INVALID_INPUT",
    `${triggerHeader}: ${JSON.stringify(String(said).slice(0, 40))} is not a trigger a client may give`,
    {
      hint: `Send \`${triggerHeader}: manual\` when a person submits the run, or leave the header out (the run's trigger is then \`api\`).`,
    },
  );
}
