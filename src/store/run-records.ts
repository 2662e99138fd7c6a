import type { Selectable } from "kysely";
import type { ErrorInfo, RunKind, RunStatus, StepSummary } from "../core/events.js";
import type { RunTrigger } from "../core/run-trigger.js";
import type { PageQuery } from "./paging.js";
import type { RunsTable } from "./schema.js";

/* What a stored run is: its record, a new run, a patch of its state, and the runs verbs' queries (runs.ts). */

/**
 * One execution of one piece of work (a workflow, an agent task, a bot), as stored: its row, less
 * what only the store reads (its replica, its log state, a cancel request), what may hold secrets
 * opened and its JSON read.
 */
export type RunRecord = Omit<
  Selectable<RunsTable>,
  | "spec"
  | "vars"
  | "steps"
  | "error"
  | "last_seq"
  | "rolled_back"
  | "replica_id"
  | "cancel_requested_at"
  | "log_max_bytes"
  | "log_rolling"
  | "log_bytes"
  | "log_cut"
> & {
  /** What was submitted, stored as JSON: the workflow text, vars, options. */
  spec: unknown;
  /** Variables exported so far (final ones once the run has finished). */
  vars: Record<string, string>;
  /** One summary per step and host; empty until the engine reports them. */
  steps: StepSummary[];
  /** Why the run failed or was interrupted; null while it has not. */
  error: ErrorInfo | null;
  /** Highest event seq stored for the run; 0 before the first event. */
  last_seq: number;
  /** A failed workflow run whose rollbacks all ran and succeeded. */
  rolled_back: boolean;
};

/** Where a run is, without what it runs: what a follower of its events needs (`runs.state`). */
export type RunState = Pick<RunRecord, "id" | "status" | "tenant_id" | "last_seq">;

/** What `runs.create` needs; everything else starts empty. */
export interface NewRun {
  /** Defaults to a fresh `newRunId()`. A caller-given id that exists already is a CONFLICT. */
  id?: string;
  kind: RunKind;
  name: string;
  /** Defaults to `queued`. */
  status?: RunStatus;
  tenant_id?: string | null;
  created_by?: string | null;
  /** The user behind `created_by`; defaults to none. */
  created_by_user?: string | null;
  /** Defaults to `created_by`. */
  authored_by?: string | null;
  spec?: unknown;
  vars?: Record<string, string>;
  /** Defaults to the store clock's now. */
  created_at?: string;
  /** The replica whose engine carries the run (see `fleet.adoptRuns`); not part of the record. */
  replica_id?: string;
  /** The concurrency group it takes turns in; default none. */
  concurrency_group?: string | null;
  /** Defaults to `api`. */
  trigger?: RunTrigger;
  trigger_ref?: string | null;
  saved_workflow?: string | null;
  saved_version?: number | null;
  retry_of?: string | null;
  retry_from?: string | null;
  /** A call's child run: the calling run and step. Another child of that step is a CONFLICT. */
  parent_run_id?: string | null;
  parent_step?: string | null;
}

/** The fields of a run that change while it runs; absent keys are left as they are. */
export type RunPatch = Partial<
  Pick<
    RunRecord,
    | "name"
    | "status"
    | "started_at"
    | "finished_at"
    | "vars"
    | "steps"
    | "error"
    | "last_notify_error"
    | "rolled_back"
    | "rollback_failed"
  >
>;

/** Filters and paging for `runs.list`; runs come newest first (`created_at` desc, then `id` desc). */
export interface ListRunsQuery extends PageQuery {
  status?: RunStatus | readonly RunStatus[];
  kind?: RunKind;
  /** Runs started by this trigger; `retry`: the runs that retry another (`retry_of`). */
  trigger?: RunTrigger | "retry";
  /** A tenant's runs; `null` for runs outside any tenant; absent for all runs. */
  tenantId?: string | null;
  /** Runs of this name (an agent task's follow-ups keep its name). */
  name?: string;
}

/** One page of runs; `next` is present when there are more, and is the `before` of the next page. */
export interface RunPage {
  runs: RunRecord[];
  next?: string;
}

/** How many runs of one kind are in one status (`runs.count`). */
export interface RunCount {
  kind: RunKind;
  status: RunStatus;
  count: number;
}

/** Whose queued and running runs `runs.countActive` counts (never bot runs: bots have their own quota); absent keys do not filter. */
export interface ActiveRunsQuery {
  /** One tenant's runs; `null` for runs outside any tenant. */
  tenantId?: string | null;
  /** Runs made by this user (`created_by_user`): signed in, or through any of their tokens. */
  user?: string;
}

/** How many runs wait and how many run (quotas count these, from the store, on every replica). */
export interface ActiveRunCount {
  queued: number;
  running: number;
}
