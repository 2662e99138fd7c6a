import type { FastifyInstance } from "fastify";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { isFinalStatus, RunKind, RunStatus } from "../../core/events.js";
import type { RunRecord } from "../../store/types.js";
import { type RunnerNeed, runnerNeeds } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { isVariableName, variableNameHint } from "../../workflow/yaml-reader.js";
import { tenantScope } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { streamRunEvents } from "../sse.js";

/** The largest `POST /api/runs` body: a workflow and its vars, never bulk data. */
export const runBodyLimit = 8 * 1024 * 1024;

export const SubmitRunBody = z.object({
  kind: z.literal("workflow").default("workflow"),
  /** The workflow YAML text, as `runyard run FILE` would read it. */
  workflow: z.string().min(1, "workflow is empty: send the YAML text of a workflow"),
  vars: z.record(z.string(), z.coerce.string()).default({}),
  /** The file name shown in validation messages. */
  file: z.string().optional(),
});

export const ListRunsQuery = z.object({
  status: RunStatus.optional(),
  kind: RunKind.optional(),
  limit: z.coerce.number().int().min(1).max(500).default(50),
  before: z.string().optional(),
});

const EventsQuery = z.object({
  after: z.coerce.number().int().nonnegative().optional(),
  access_token: z.string().optional(),
  /** `follow=0`: send what is stored and end, instead of waiting for more. */
  follow: z.enum(["0", "1", "false", "true"]).optional(),
});

/** A run as the API shows it: the record without the submitted text. */
export function runView(run: RunRecord): Record<string, unknown> {
  const { spec: _spec, ...rest } = run;
  return { run_id: run.id, ...rest };
}

/** The runners a queued run waits for, so clients can say why it has not started. */
function waitingFor(run: RunRecord): RunnerNeed[] {
  const text = (run.spec as { workflow?: unknown } | null)?.workflow;
  const workflow = typeof text === "string" ? parseWorkflow(text, "workflow.yaml").workflow : undefined;
  return workflow ? runnerNeeds(workflow) : [];
}

function parse<T extends z.ZodType>(schema: T, value: unknown, where: string): z.infer<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const problems = result.error.issues.map((i) => `${i.path.join(".") || where}: ${i.message}`);
  throw new RunyardError("INVALID_INPUT", `invalid ${where}: ${problems.join("; ")}`, {
    details: result.error.issues,
  });
}

export function runRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const visible = async (id: string, tenant: string | null | undefined): Promise<RunRecord> => {
    const run = await deps.store.getRun(id);
    if (!run || (tenant !== undefined && run.tenant_id !== tenant)) {
      throw new RunyardError("NOT_FOUND", `run ${id} does not exist`);
    }
    return run;
  };

  app.post("/api/runs", { bodyLimit: runBodyLimit }, async (request, reply) => {
    const body = request.body as Record<string, unknown> | undefined;
    if (body && typeof body === "object" && "input" in body && !("workflow" in body)) {
      throw new RunyardError(
        "INVALID_INPUT",
        "agent runs ({input, metadata}) are not enabled on this server yet",
        {
          hint: 'Submit a workflow: {"kind":"workflow","workflow":"<yaml>"}.',
        },
      );
    }
    const input = parse(SubmitRunBody, body ?? {}, "body");
    const badName = Object.keys(input.vars).find((name) => !isVariableName(name));
    if (badName !== undefined) {
      const shown = JSON.stringify(badName.length > 40 ? `${badName.slice(0, 40)}...` : badName);
      throw new RunyardError("INVALID_INPUT", `vars: ${shown} is not a valid variable name`, {
        hint: `Variables travel as environment variables: ${variableNameHint} (as in a workflow's vars:).`,
      });
    }
    const principal = request.principal;
    const run = await deps.runs.submitWorkflow(
      { workflow: input.workflow, vars: input.vars, ...(input.file ? { file: input.file } : {}) },
      { tenantId: principal?.tenant_id ?? null, tokenId: principal?.id ?? null },
    );
    reply.code(201);
    return { run_id: run.id, status: run.status };
  });

  app.get("/api/runs", async (request) => {
    const query = parse(ListRunsQuery, request.query, "query");
    const tenant = tenantScope(request);
    const page = await deps.store.listRuns({
      ...(query.status ? { status: query.status } : {}),
      ...(query.kind ? { kind: query.kind } : {}),
      ...(tenant !== undefined ? { tenantId: tenant } : {}),
      limit: query.limit,
      ...(query.before ? { before: query.before } : {}),
    });
    return { runs: page.runs.map(runView), next: page.next ?? null };
  });

  app.get("/api/runs/:id", async (request) => {
    const { id } = request.params as { id: string };
    const run = await visible(id, tenantScope(request));
    return run.status === "queued" ? { ...runView(run), waiting_for: waitingFor(run) } : runView(run);
  });

  app.post("/api/runs/:id/cancel", async (request, reply) => {
    const { id } = request.params as { id: string };
    await visible(id, tenantScope(request));
    const run = await deps.runs.cancel(id);
    reply.code(200);
    // Still going: a runner is stopping a step (SIGTERM, then SIGKILL after its kill grace).
    return { run_id: run.id, status: isFinalStatus(run.status) ? run.status : "canceling" };
  });

  app.get("/api/runs/:id/events", async (request, reply) => {
    const { id } = request.params as { id: string };
    const query = parse(EventsQuery, request.query, "query");
    await visible(id, tenantScope(request));
    const header = request.headers["last-event-id"];
    const fromHeader = typeof header === "string" && /^\d+$/.test(header) ? Number(header) : undefined;
    const follow = query.follow === undefined || query.follow === "1" || query.follow === "true";
    await streamRunEvents(reply, deps, id, fromHeader ?? query.after ?? 0, follow);
    return reply;
  });

  /** Seed 002's run snapshot: 404 for an unknown run id. */
  app.get("/run-status", async (request) => {
    const runId = (request.query as { run_id?: string }).run_id;
    if (!runId)
      throw new RunyardError("INVALID_INPUT", "run_id is required", { hint: "GET /run-status?run_id=<id>" });
    const run = await visible(runId, tenantScope(request));
    return {
      run_id: run.id,
      workflow_name: run.name,
      status: run.status,
      steps: run.steps,
      vars: run.vars,
      error: run.error,
      created_at: run.created_at,
      started_at: run.started_at,
      finished_at: run.finished_at,
      last_notify_error: run.last_notify_error,
    };
  });
}
