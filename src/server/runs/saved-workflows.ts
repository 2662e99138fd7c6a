import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import type { RunTrigger } from "../../core/run-trigger.js";
import type { NewSchedule, RunRecord, SavedWorkflowRecord, Store } from "../../store/index.js";
import {
  type Diagnostic,
  type InputSpec,
  type Workflow,
  workflowProblemsError,
} from "../../workflow/model.js";
import { nextTick } from "../../workflow/schedule.js";
import { peakRunsPerHour, shortestMergedGap } from "../../workflow/schedule-load.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import { actorOf, mayActFor } from "../acting-for.js";
import { type Principal, submitterId } from "../auth.js";
import { type ConfinementSources, runConfinement } from "./run-confinement.js";
import type { RunOwner } from "./run-origin.js";
import type { RunService } from "./run-service.js";
import { keepNewest, parsedWorkflow, type WorkflowParser } from "./workflow-parser.js";

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
  /**
   * Who triggers the run (the caller, the hook's or schedule's owner); the run's confinement is the lesser
   * of theirs and the version's author's (run-confinement.ts). Its tenant is `tenantId`'s.
   */
  owner: { tokenId: string | null; submitter: NonNullable<ConfinementSources["submitter"]> };
}

/** Saved versions whose inputs are kept parsed (`SavedWorkflows.liveInputs`). */
const inputsKept = 64;

/** A hook, or the live version's schedules; its owner made the hook or promoted the schedule's version. */
export const BoundTrigger = z.object({
  kind: z.enum(["hook", "schedule"]),
  name: z.string().describe("the hook's name, or the schedule's cron"),
  owner: z.string().nullable().describe("whose it is: a token or user id"),
});
export type BoundTrigger = z.infer<typeof BoundTrigger>;

/**
 * Named, versioned workflows per tenant, checked as a submitted run and run by name. Its hooks and
 * schedules run the live version: a save is live when its saver may act for every bound trigger, else
 * pending until a tenant admin or the triggers' owner promotes it (docs/security.md "Who a triggered run
 * acts as").
 */
export class SavedWorkflows {
  /** The inputs of the versions hooks ran last, by file and text, so a busy hook parses not per delivery. */
  private readonly inputsByText = new Map<string, Record<string, InputSpec>>();

  constructor(
    private readonly store: Pick<Store, "savedWorkflows" | "hooks" | "schedules" | "tokens" | "users">,
    private readonly runs: Pick<RunService, "submitWorkflow">,
    private readonly parsing: {
      limits: WorkflowLimits;
      parse: WorkflowParser;
      /** A saved workflow's schedules together fire at most once in this many seconds; unset: no floor. */
      minScheduleIntervalS?: number;
      /** A tenant's schedules may start at most this many runs an hour; unset: no cap. */
      maxScheduledRunsPerHour?: number;
    },
    private readonly now: () => Date = () => new Date(),
  ) {}

  /**
   * Checks the workflow as a run's (every problem with file:line:col, size limits) and stores it as the
   * name's next version: live at once when `blocking` is empty, else pending. A problem stores nothing.
   */
  async save(input: {
    tenantId: string | null;
    name: string;
    workflow: string;
    file?: string;
    saver: Principal;
  }): Promise<SavedWorkflowRecord & { schedules: NewSchedule[]; blocking: BoundTrigger[] }> {
    checkSavedName(input.name);
    const file = input.file ?? `${input.name}.yaml`;
    const workflow = await parsedWorkflow(this.parsing, input.workflow, file);
    await this.checkHookInputs(input.tenantId, input.name, workflow, file);
    const schedules = await this.schedulesOf(input.tenantId, input.name, workflow, file);
    const blocking = await this.blockingTriggers(input.tenantId, input.name, input.saver);
    const record = await this.store.savedWorkflows.save({
      tenant_id: input.tenantId,
      name: input.name,
      workflow: input.workflow,
      file,
      created_by: submitterId(input.saver),
      unrestricted: runConfinement({ submitter: { principal: input.saver } }) === "unconfined",
      promote: blocking.length === 0,
      schedules,
    });
    return { ...record, schedules, blocking };
  }

  /**
   * Makes a pending version live; its `schedule:` replaces the name's schedules (owned by the promoter).
   * Only one who may act for every bound trigger may: a tenant admin, or the owner of them all.
   */
  async promote(
    tenantId: string | null,
    name: string,
    version: number,
    promoter: Principal,
  ): Promise<SavedWorkflowRecord & { schedules: NewSchedule[]; previous: number | null }> {
    const saved = await this.get(tenantId, name, version);
    const live = await this.store.savedWorkflows.live(tenantId, name);
    if (saved.promoted_at !== null || (live && live.version >= version)) {
      throw new RunyardError(
        "CONFLICT",
        saved.promoted_at !== null
          ? `version ${version} of ${name} is promoted already`
          : `version ${version} of ${name} is older than its live version ${live?.version}`,
        {
          hint: `Only a version newer than the live one can be promoted; to run an older text again, save it again (it becomes the next version). \`runyard workflow show ${name}\` lists the versions.`,
        },
      );
    }
    const blocking = await this.blockingTriggers(tenantId, name, promoter);
    if (blocking.length > 0) {
      throw new RunyardError(
        "FORBIDDEN",
        `you may not promote version ${version} of ${name}: ${blocking.map(triggerText).join(", ")} ${blocking.length === 1 ? "is" : "are"} someone else's`,
        {
          hint: "A version becomes what a hook or schedule runs when a tenant admin, or the one whose hooks and schedules they are, promotes it: ask them to run `runyard workflow promote NAME VERSION`.",
        },
      );
    }
    const workflow = await parsedWorkflow(this.parsing, saved.workflow, saved.file);
    // A hook made since the save may pick an input this version does not declare.
    await this.checkHookInputs(tenantId, name, workflow, saved.file);
    const schedules = await this.schedulesOf(tenantId, name, workflow, saved.file);
    const promoted = await this.store.savedWorkflows.promote({
      tenant_id: tenantId,
      name,
      version,
      promoted_by: submitterId(promoter),
      schedules,
    });
    if (!promoted) {
      throw new RunyardError(
        "CONFLICT",
        `version ${version} of ${name} was promoted, or a newer one, meanwhile`,
        { hint: `\`runyard workflow show ${name}\` shows which version is live now.` },
      );
    }
    const record = await this.get(tenantId, name, version);
    return { ...record, schedules, previous: live?.version ?? null };
  }

  /**
   * Refuses a version whose `inputs:` miss a variable a hook of the name fills: once live, that hook's
   * deliveries would be refused. At `inputs:` (or the file's top).
   */
  private async checkHookInputs(
    tenantId: string | null,
    name: string,
    workflow: Workflow,
    file: string,
  ): Promise<void> {
    const declared = workflow.inputs ?? {};
    const at = workflow.inputsPos ?? { line: 1, col: 1 };
    const problems: Diagnostic[] = [];
    for (const hook of (await this.store.hooks.list(tenantId)).filter((h) => h.workflow === name)) {
      const undeclared = Object.keys(hook.vars).filter((v) => !(v in declared));
      if (undeclared.length === 0) continue;
      problems.push({
        file,
        ...at,
        message: `hook ${hook.name} fills ${undeclared.join(", ")}, which inputs: does not declare`,
        hint: `declare ${undeclared.length === 1 ? "it" : "each"} under inputs: (e.g. inputs: {${undeclared[0]}: {type: string, max_length: 200}}), or remove the hook (runyard hook rm ${hook.name})`,
      });
    }
    if (problems.length > 0) throw workflowProblemsError(file, problems);
  }

  /** The live version of a name and the inputs it declares (what a hook may fill). */
  async liveInputs(
    tenantId: string | null,
    name: string,
  ): Promise<{ saved: SavedWorkflowRecord; inputs: Record<string, InputSpec> }> {
    const saved = await this.live(tenantId, name);
    const key = `${saved.file}\u0000${saved.workflow}`;
    const inputs =
      this.inputsByText.get(key) ??
      (await parsedWorkflow(this.parsing, saved.workflow, saved.file)).inputs ??
      {};
    keepNewest(this.inputsByText, key, inputs, inputsKept);
    return { saved, inputs };
  }

  /** The hooks and schedules bound to a name that `principal` may not act for. */
  private async blockingTriggers(
    tenantId: string | null,
    name: string,
    principal: Principal,
  ): Promise<BoundTrigger[]> {
    const blocking: BoundTrigger[] = [];
    for (const trigger of await this.triggersOf(tenantId, name)) {
      if (!(await mayActFor(this.store, principal, trigger.owner, tenantId))) blocking.push(trigger);
    }
    return blocking;
  }

  /** The hooks and schedules bound to a saved workflow's name. */
  async triggersOf(tenantId: string | null, name: string): Promise<BoundTrigger[]> {
    const hooks = (await this.store.hooks.list(tenantId)).filter((hook) => hook.workflow === name);
    const schedules = (await this.store.schedules.list(tenantId)).filter((s) => s.workflow_name === name);
    return [
      ...hooks.map((hook) => ({ kind: "hook" as const, name: hook.name, owner: hook.created_by })),
      ...schedules.map((s) => ({ kind: "schedule" as const, name: s.cron, owner: s.owner })),
    ];
  }

  /**
   * A workflow's `schedule:` entries armed from now; refused past the floor, or past the tenant's runs an
   * hour (each workflow's schedules' peak hour, summed: what could happen).
   */
  private async schedulesOf(
    tenantId: string | null,
    name: string,
    workflow: Workflow,
    file: string,
  ): Promise<NewSchedule[]> {
    const armedAt = this.now();
    const specs = workflow.schedules ?? [];
    const floor = this.parsing.minScheduleIntervalS ?? 0;
    const gap = shortestMergedGap(specs, armedAt);
    if (gap !== undefined && gap.gapMs < floor * 1000) {
      const [a, b] = gap.between;
      throw new RunyardError(
        "INVALID_INPUT",
        a === b
          ? `${file}: schedule "${a}" fires every ${gap.gapMs / 1000} s; this server allows a schedule to fire at most once in ${floor} s`
          : `${file}: schedules "${a}" and "${b}" together fire ${gap.gapMs / 1000} s apart; this server allows a workflow's schedules to fire at most once in ${floor} s together`,
        {
          hint: `Fire less often (a 5-field cron such as "*/5 * * * *" fires at most once a minute${a === b ? "" : "; the entries of one workflow count together"}), or ask the server's operator to lower RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS. Nothing was saved.`,
        },
      );
    }
    const cap = this.parsing.maxScheduledRunsPerHour;
    if (cap !== undefined && specs.length > 0) {
      const own = peakRunsPerHour(specs, armedAt);
      const others = new Map<string, { cron: string; timezone: string }[]>();
      for (const schedule of await this.store.schedules.list(tenantId)) {
        if (schedule.workflow_name === name) continue;
        others.set(schedule.workflow_name, [...(others.get(schedule.workflow_name) ?? []), schedule]);
      }
      let elsewhere = 0;
      for (const entries of others.values()) elsewhere += peakRunsPerHour(entries, armedAt);
      if (own + elsewhere > cap) {
        const whose = tenantId === null ? "outside any tenant" : `of tenant ${tenantId}`;
        throw new RunyardError(
          "INVALID_INPUT",
          `${file}: the schedules ${whose} could start ${own + elsewhere} runs in an hour (this workflow's ${own}, the others' ${elsewhere}); this server allows ${cap} scheduled runs an hour per tenant`,
          {
            hint: "Fire less often, or remove schedules the tenant no longer needs (`runyard schedule list`); the server's operator sets the cap with RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR. Nothing was saved.",
          },
        );
      }
    }
    return specs.map((spec) => ({
      cron: spec.cron,
      timezone: spec.timezone,
      overlap: spec.overlap,
      catch_up: spec.catchUp,
      armed_at: armedAt.toISOString(),
      next_tick_at: nextTick(spec, armedAt)?.toISOString() ?? null,
    }));
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

  /** The version a name's hooks and schedules run; NOT_FOUND when there is none. */
  async live(tenantId: string | null, name: string): Promise<SavedWorkflowRecord> {
    const record = await this.store.savedWorkflows.live(tenantId, name);
    if (record) return record;
    await this.get(tenantId, name);
    throw new RunyardError("NOT_FOUND", `saved workflow ${name} has no promoted version`, {
      hint: `A tenant admin promotes one with \`runyard workflow promote ${name} VERSION\`.`,
    });
  }

  /**
   * What a trigger's owner (a hook's maker, a schedule's promoter) acts as now: a platform admin's may
   * call any destination; an owner removed since has no rights beyond a member's.
   */
  async triggerOwner(ownerId: string | null): Promise<SavedRunRequest["owner"]> {
    return { tokenId: ownerId, submitter: { actor: await actorOf(this.store, ownerId) } };
  }

  /** Queues a run of a saved version, recording who triggered and who wrote it; it has the lesser rights. */
  async startRun(request: SavedRunRequest): Promise<RunRecord> {
    const saved = await this.get(request.tenantId, request.name, request.version);
    const owner: RunOwner = {
      tenantId: request.tenantId,
      tokenId: request.owner.tokenId,
      confinement: runConfinement({ submitter: request.owner.submitter, saved }),
    };
    return this.runs.submitWorkflow(
      { workflow: saved.workflow, vars: request.vars, file: saved.file },
      owner,
      {
        trigger: request.trigger,
        ...(request.ref !== undefined ? { ref: request.ref } : {}),
        ...(request.runId !== undefined ? { runId: request.runId } : {}),
        saved: { name: saved.name, version: saved.version },
        authoredBy: saved.created_by,
      },
    );
  }
}

/** `hook acme-push (tok_...)`: a trigger as an error names it. */
function triggerText(trigger: BoundTrigger): string {
  return trigger.kind === "hook" ? `hook ${trigger.name}` : `schedule "${trigger.name}"`;
}
