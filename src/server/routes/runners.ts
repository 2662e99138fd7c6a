import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { apiSchemas, NoQuery } from "../api-schemas.js";
import { tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { protectedResponses } from "../error-responses.js";

/** An entry of the ADOS runners list (id, group, status, hostname, cpus, memory, connected_at) and more. */
const RunnerView = z.object({
  id: z.string(),
  group: z.string(),
  status: z.enum(["connected", "offline"]),
  state: z.enum(["idle", "busy", "offline"]),
  hostname: z.string(),
  cpus: z.number().nullable(),
  memory: z.string().nullable().describe("as advertised, e.g. `8g`"),
  connected_at: z.string().nullable(),
  labels: z.array(z.string()),
  mode: z.string(),
  capacity: z.number().int().describe("jobs it runs at once"),
  tenant_id: z.string().nullable(),
  shared: z
    .boolean()
    .describe("the operator marked it shared (`runyard runner --shared`): it takes runs of every tenant"),
  isolation: z
    .enum(["sandbox", "docker", "none"])
    .describe("how it keeps each run from the others: a bubblewrap sandbox, a container, or none"),
  running_jobs: z.array(z.string()),
  last_heartbeat_at: z.string().nullable(),
  version: z.string().nullable().describe("the runyard version the runner runs"),
  replica: z.string().nullable().describe("the server replica the runner is connected to (or was last)"),
});
apiSchemas.add(RunnerView, { id: "Runner" });

export function runnerRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    "/api/runners",
    {
      schema: {
        operationId: "listRunners",
        summary: "Connected and known runners",
        description: "A tenant's token sees its tenant's runners only.",
        tags: ["runners"],
        querystring: NoQuery,
        response: protectedResponses(200, "the runners", z.array(RunnerView)),
      },
    },
    async (request) => {
      const tenant = tenantScope(request);
      const runners = await deps.store.runners.list(tenant !== undefined ? { tenantId: tenant } : {});
      // The fleet's jobs, whichever replica their runner is connected to.
      const held = new Map<string, string[]>();
      for (const job of await deps.store.jobs.list({ statuses: ["assigned", "running"] })) {
        if (!job.runner_id) continue;
        held.set(job.runner_id, [...(held.get(job.runner_id) ?? []), job.id]);
      }
      return runners.map((runner) => {
        const online = runner.status === "online";
        const running = online ? (held.get(runner.id) ?? []) : [];
        const busy = running.length > 0 ? ("busy" as const) : ("idle" as const);
        return {
          ...runner,
          status: online ? ("connected" as const) : ("offline" as const),
          state: online ? busy : ("offline" as const),
          running_jobs: running,
          replica: runner.replica_id,
        };
      });
    },
  );
}
