import { RunyardError } from "../../core/errors.js";
import type { RunTrigger } from "../../core/run-trigger.js";
import type { NewSchedule, RunRecord, SavedWorkflowRecord, Store } from "../../store/index.js";
import { workflowProblemsError } from "../../workflow/model.js";
import { nextTick, type ScheduleSpec } from "../../workflow/schedule.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import type { RunOwner, RunService } from "./run-service.js";
import type { WorkflowParser } from "./workflow-parser.js";

/** A saved workflow's name: what `runyard workflow run NAME` and URLs carry, so plain. */
const savedName = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Refuses a name a URL or a shell would mangle, suggesting one that is not. */
export function checkSavedName(name: string): void {
  if (savedName.test(name)) return;
  const shown = JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}...` : name);
  const slug = name
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 100);
  throw new RunyardError("INVALID_INPUT", `${shown} is not a valid saved workflow name`, {
    hint: `Names are letters, digits, ".", "_" and "-", start with a letter or digit, and are at most 100 long${savedName.test(slug) ? ` (e.g. ${slug})` : ""}.`,
  });
}

/** What starts a run of a saved workflow (the routes, the scheduler, webhooks). */
export interface SavedRunRequest {
  /** The tenant whose saved workflow it is; the run belongs to it too. */
  tenantId: string | null;
  name: string;
  /** Default: the newest version. */
  version?: number;
  vars: Record<string, string>;
  trigger: RunTrigger;
  /** What is behind the trigger: the schedule id, the hook name. */
  ref?: string;
  /** The run's id fixed in advance (a schedule's tick). */
  runId?: string;
  /** Who the run is submitted as; its tenant is `tenantId`'s whatever this says. */
  owner: Omit<RunOwner, "tenantId"> & { tenantId?: string | null };
}

/**
 * The shortest time between two ticks of `spec` among its next few, in ms: a cron such as
 * `0,1 * * * *` fires twice a minute apart once an hour, so the first gap alone would not do.
 */
function shortestGap(spec: ScheduleSpec, from: Date): number | undefined {
  let shortest: number | undefined;
  let previous = nextTick(spec, from);
  for (let i = 0; previous && i < 60; i++) {
    const next = nextTick(spec, previous);
    if (!next) break;
    const gap = next.getTime() - previous.getTime();
    shortest = shortest === undefined ? gap : Math.min(shortest, gap);
    previous = next;
  }
  return shortest;
}

/**
 * Named, versioned workflows per tenant: saved after the same checks as a submitted run, and run
 * by name. Saving a version replaces the name's schedules with those of its `schedule:`.
 */
export class SavedWorkflows {
  constructor(
    private readonly store: Pick<Store, "savedWorkflows">,
    private readonly runs: Pick<RunService, "submitWorkflow">,
    private readonly parsing: {
      limits: WorkflowLimits;
      parse: WorkflowParser;
      /** A schedule may fire at most once in this many seconds; unset: no floor. */
      minScheduleIntervalS?: number;
    },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Checks the workflow as a run's would be checked (every problem with file:line:col, size
   * limits) and stores it as the name's next version. A workflow with a problem stores nothing.
   */
  async save(input: {
    tenantId: string | null;
    name: string;
    workflow: string;
    file?: string;
    createdBy: string | null;
    unrestricted?: boolean;
  }): Promise<SavedWorkflowRecord & { schedules: NewSchedule[] }> {
    checkSavedName(input.name);
    const file = input.file ?? `${input.name}.yaml`;
    const { workflow, diagnostics } = await this.parsing.parse(input.workflow, file, this.parsing.limits);
    if (!workflow) throw workflowProblemsError(file, diagnostics);
    const armedAt = this.now();
    const floor = this.parsing.minScheduleIntervalS ?? 0;
    for (const spec of workflow.schedules ?? []) {
      const gap = shortestGap(spec, armedAt);
      if (gap === undefined || gap >= floor * 1000) continue;
      throw new RunyardError(
        "INVALID_INPUT",
        `${file}: schedule "${spec.cron}" fires every ${gap / 1000} s; this server allows a schedule to fire at most once in ${floor} s`,
        {
          hint: `Fire less often (a 5-field cron such as "*/5 * * * *" fires at most once a minute), or ask the server's operator to lower RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS. Nothing was saved.`,
        },
      );
    }
    const schedules: NewSchedule[] = (workflow.schedules ?? []).map((spec) => ({
      cron: spec.cron,
      timezone: spec.timezone,
      overlap: spec.overlap,
      catch_up: spec.catchUp,
      armed_at: armedAt.toISOString(),
      next_tick_at: nextTick(spec, armedAt)?.toISOString() ?? null,
    }));
    const record = await this.store.savedWorkflows.save({
      tenant_id: input.tenantId,
      name: input.name,
      workflow: input.workflow,
      file,
      created_by: input.createdBy,
      unrestricted: input.unrestricted ?? false,
      schedules,
    });
    return { ...record, schedules };
  }

  /** The newest version of a name (or `version`); NOT_FOUND, as for another tenant's, when none. */
  async get(tenantId: string | null, name: string, version?: number): Promise<SavedWorkflowRecord> {
    const record = await this.store.savedWorkflows.get(tenantId, name, version);
    if (record) return record;
    const known = version !== undefined && (await this.store.savedWorkflows.get(tenantId, name));
    throw new RunyardError(
      "NOT_FOUND",
      known ? `saved workflow ${name} has no version ${version}` : `no saved workflow named ${name}`,
      {
        hint: known
          ? `Its newest version is ${known.version}; \`runyard workflow show ${name}\` lists them.`
          : "`runyard workflow list` shows the saved workflows of your tenant; save one with `runyard workflow save FILE`.",
      },
    );
  }

  /** Queues a run of a saved workflow version; it records that version and what started it. */
  async startRun(request: SavedRunRequest): Promise<RunRecord> {
    const saved = await this.get(request.tenantId, request.name, request.version);
    return this.runs.submitWorkflow(
      { workflow: saved.workflow, vars: request.vars, file: saved.file },
      { ...request.owner, tenantId: request.tenantId },
      {
        trigger: request.trigger,
        ...(request.ref !== undefined ? { ref: request.ref } : {}),
        ...(request.runId !== undefined ? { runId: request.runId } : {}),
        saved: { name: saved.name, version: saved.version },
      },
    );
  }
}
