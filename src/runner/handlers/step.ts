import { attemptEndedEarly } from "../../core/attempt-ended-early.js";
import type { StepJob, StepJobResult } from "../../core/jobs/step.js";
import type { StepRunner } from "../../core/step-attempt.js";
import type { RunTmpFolders } from "../run-tmp.js";
import type { JobHandler, JobIo } from "./types.js";

/** A sandboxed runner's run /tmp: the folders, and the step runner that shows one as /tmp. */
export interface StepRunTmp {
  folders: RunTmpFolders;
  runnerWith(tmp: string): StepRunner;
}

/**
 * Runs `step` jobs: one step attempt on this machine, its output sent as `step.output` events.
 * With `runTmp`, the steps of one run share the run's own /tmp on this runner.
 */
export class StepJobHandler implements JobHandler<"step"> {
  constructor(
    private readonly stepRunner: StepRunner,
    private readonly runTmp?: StepRunTmp,
  ) {}

  async run(job: StepJob, io: JobIo): Promise<StepJobResult> {
    const { step, host, run_id: runId } = job.payload;
    const runTmp = this.runTmp;
    const failed = (error: unknown) =>
      attemptEndedEarly("failed", {
        code: "INTERNAL",
        message: error instanceof Error ? error.message : String(error),
      });
    try {
      const stepRunner = runTmp ? runTmp.runnerWith(await runTmp.folders.hold(runId)) : this.stepRunner;
      const result = await stepRunner
        .runAttempt(job.payload, {
          signal: io.signal,
          onOutput: (stream, data) => io.emit({ type: "step.output", step, host, stream, data }),
        })
        .catch(failed);
      return { kind: "step", ...result };
    } catch (error) {
      return { kind: "step", ...failed(error) };
    } finally {
      runTmp?.folders.release(runId);
    }
  }
}
