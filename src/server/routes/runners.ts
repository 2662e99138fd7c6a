import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { requireAdmin, tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";

export const CreateTokenBody = z.object({
  kind: z.enum(["runner", "user", "admin"]),
  name: z.string().min(1).default("token"),
  group: z.string().min(1).optional(),
  tenant_id: z.string().min(1).optional(),
});

export function runnerRoutes(app: FastifyInstance, deps: ServerDeps): void {
  /** Seed 000's runner list: id, group, status, hostname, cpus, memory, connected_at, and more. */
  app.get("/api/runners", async (request) => {
    const tenant = tenantScope(request);
    const runners = await deps.store.listRunners(tenant !== undefined ? { tenantId: tenant } : {});
    return runners.map((runner) => {
      const running = deps.hub.runningJobs(runner.id);
      return {
        id: runner.id,
        group: runner.group,
        status: runner.status === "online" ? "connected" : "offline",
        state: runner.status === "online" ? (running.length > 0 ? "busy" : "idle") : "offline",
        hostname: runner.hostname,
        cpus: runner.cpus,
        memory: runner.memory,
        connected_at: runner.connected_at,
        labels: runner.labels,
        mode: runner.mode,
        capacity: runner.capacity,
        tenant_id: runner.tenant_id,
        running_jobs: running,
        last_heartbeat_at: runner.last_heartbeat_at,
        version: runner.version,
      };
    });
  });

  /** Admins make tokens: runner tokens (optionally bound to a group) and user tokens. */
  app.post("/api/tokens", async (request, reply) => {
    requireAdmin(request);
    const parsed = CreateTokenBody.safeParse(request.body ?? {});
    if (!parsed.success) {
      throw new RunyardError(
        "INVALID_INPUT",
        parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "),
      );
    }
    const { record, secret } = await deps.store.createToken(parsed.data);
    reply.code(201);
    return { ...record, token: secret };
  });
}
