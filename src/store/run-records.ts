import type { ErrorInfo, RunKind, RunStatus, StepSummary } from "../core/events.js";
import type { RunTrigger } from "../core/run-trigger.js";

/* What a stored run is: its record, a new run, a patch of its state, and the runs verbs' queries (runs.ts). */

/** One execution of one piece of work (a workflow, an agent task, a bot), as stored. */
export interface RunRecord {
  /** Unique; runyard's own ids (`newRunId()`) sort by creation time, caller-given ids need not. */
  id: string;
  kind: RunKind;
  /** The workflow, task or bot name people read. */
  name: string;
  status: RunStatus;
  /** Owning tenant; null for a run outside any tenant. Tenants see only their own runs. */
  tenant_id: string | null;
  /** Id of the token (or user) that submitted or triggered the run (not the secret), or null. */
  created_by: string | null;
  /**
   * The user behind `created_by` as it was at submit (the token's user, or the signed-in user):
   * the run stays theirs (spend, quota, approvals) after that token is revoked. Null for a token
   * of no user.
   */
  created_by_user: string | null;
  /**
   * Id of the token (or user) that wrote what the run runs: a saved version's saver, a text's
   * submitter, a re-run's first author. The run has the lesser rights of the two.
   */
  authored_by: string | null;
  /** What was submitted, stored as JSON: the workflow text, vars, options. */
  spec: unknown;
  /** Variables exported so far (final ones once the run has finished). */
  vars: Record<string, string>;
  /** One summary per step and host; empty until the engine reports them. */
  steps: StepSummary[];
  /** Why the run failed or was interrupted; null while it has not. */
  error: ErrorInfo | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
  /** Highest event seq stored for the run; 0 before the first event. */
  last_seq: number;
  /**
   * The last failure of the status notifier (the notifier's `last_notify_error`); it never changes
   * status.
   */
  last_notify_error: string | null;
  /** The concurrency group the run takes turns in (its workflow's, expanded at submit); null: none. */
  concurrency_group: string | null;
  /** What started the run. */
  trigger: RunTrigger;
  /** What is behind the trigger: the schedule id, the hook name, the run re-run; null for none. */
  trigger_ref: string | null;
  /** The saved workflow the run ran; null for a workflow sent as text. */
  saved_workflow: string | null;
  /** That saved workflow's version. */
  saved_version: number | null;
  /** A failed workflow run whose rollbacks all ran and succeeded. */
  rolled_back: boolean;
  /** A failed workflow run: the rollback step that failed (`rollback: deploy`); null: none did. */
  rollback_failed: string | null;
  /** The run this one retries (`runs retry`, `runs run-step`): it kept that run's finished steps. */
  retry_of: string | null;
  /** The step it retried from, or the one step it ran; null when `retry_of` is. */
  retry_from: string | null;
  /** The run whose `workflow.call` step started this one; null for any other run. */
  parent_run_id: string | null;
  /** That step's name. */
  parent_step: string | null;
}

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
export interface ListRunsQuery {
  status?: RunStatus | readonly RunStatus[];
  kind?: RunKind;
  /** A tenant's runs; `null` for runs outside any tenant; absent for all runs. */
  tenantId?: string | null;
  /** Page size: default 50, at most 500. */
  limit?: number;
  /** Cursor: the `next` of the previous page (a run id); the page starts after that run. */
  before?: string;
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
