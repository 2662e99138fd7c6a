import type { Confinement } from "../../core/confinement.js";
import type { RunTrigger } from "../../core/run-trigger.js";

/** Who submits a run. */
export interface RunOwner {
  tenantId: string | null;
  tokenId: string | null;
  /**
   * The user behind `tokenId` (null: a token of no user); looked up from `tokenId` when absent. A
   * call's child run gives its parent's, which outlives the parent's token.
   */
  userId?: string | null;
  /**
   * How far the run may reach, decided by `runConfinement` (run-confinement.ts) from who submits
   * it and what it stems from; absent: confined.
   */
  confinement?: Confinement;
}

/** What started a run, and the saved workflow it runs; every submit says. */
export interface RunOrigin {
  trigger: RunTrigger;
  /** What is behind the trigger: the schedule id, the hook name, the run re-run. */
  ref?: string;
  /** The saved workflow version the run runs. */
  saved?: { name: string; version: number };
  /** Who wrote what the run runs, when not its submitter (a saved version's saver, a re-run's author). */
  authoredBy?: string | null;
  /** The run's id, fixed in advance: a schedule's tick names its run before the run is stored. */
  runId?: string;
  /** A retry: the run it retries, and the step it runs from (or the one step it runs). */
  retry?: { of: string; from: string };
  /** A call's child run: the run and the `workflow.call` step that started it. */
  parent?: { runId: string; step: string };
}
