import type { FastifyRequest } from "fastify";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import type { RunRecord, RunState } from "../../store/index.js";
import { tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";

/** The path parameters of a route about one run. */
export const RunParams = z.object({ id: z.string().min(1).describe("the run id") });

/**
 * The run `id` as the caller may see it: another tenant's run is absent (NOT_FOUND), never
 * forbidden, so its existence does not leak.
 */
export async function visibleRun(
  deps: Pick<ServerDeps, "store">,
  request: FastifyRequest,
  id: string,
): Promise<RunRecord> {
  return visible(request, id, await deps.store.runs.get(id));
}

/** As `visibleRun`, reading only where the run is (its status and last seq), not what it runs. */
export async function visibleRunState(
  deps: Pick<ServerDeps, "store">,
  request: FastifyRequest,
  id: string,
): Promise<RunState> {
  return visible(request, id, await deps.store.runs.state(id));
}

function visible<R extends Pick<RunRecord, "tenant_id">>(
  request: FastifyRequest,
  id: string,
  run: R | undefined,
): R {
  const tenant = tenantScope(request);
  if (!run || (tenant !== undefined && run.tenant_id !== tenant)) {
    throw new RunyardError("NOT_FOUND", `run ${id} does not exist`, {
      hint: "Check the run id; `runyard runs list` shows the runs your token may see.",
    });
  }
  return run;
}
