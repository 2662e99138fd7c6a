import { attemptEndedEarly } from "../../core/attempt-ended-early.js";
import type { StepJob, StepJobResult } from "../../core/jobs/step.js";
import type { StepRunner } from "../../core/step-attempt.js";
import type { RunFolders, RunPlace } from "../run-folders.js";
import type { JobHandler, JobIo } from "./types.js";

/** A sandboxing runner's runs: their folders, and the step runner that runs a step in its run's place. */
export interface StepRunPlaces {
  folders: RunFolders;
  /** `ownFolder`: the step works in the run's folder (it named no cwd), which the runner made. */
  runnerWith(place: RunPlace, ownFolder: boolean): StepRunner;
}

/**
 * Runs `step` jobs: one step attempt on this machine, its output sent as `step.output` events.
 * With `runs` (a sandboxing runner), the steps of one run share the run's sandbox, folder, /tmp
 * and `$HOME` on this runner, and a step that names no cwd works in the run's folder.
 */
export class StepJobHandler implements JobHandler<"step"> {
  constructor(
    private readonly stepRunner: StepRunner,
    private readonly runs?: StepRunPlaces,
  ) {}

  async run(job: StepJob, io: JobIo): Promise<StepJobResult> {
    const { step, host, run_id: runId } = job.payload;
    const runs = this.runs;
    const failed = (error: unknown) =>
      attemptEndedEarly("failed", {
        code: "INTERNAL",
        message: error instanceof Error ? error.message : String(error),
      });
    try {
      let request = job.payload;
      let stepRunner = this.stepRunner;
      if (runs) {
        const place = await runs.folders.hold(runId);
        // A container step keeps its image's own working folder.
        const ownFolder = request.cwd === undefined && request.container === undefined;
        if (ownFolder) request = { ...request, cwd: place.folder };
        stepRunner = runs.runnerWith(place, ownFolder);
      }
      const result = await stepRunner
        .runAttempt(request, {
          signal: io.signal,
          onOutput: (stream, data) => io.emit({ type: "step.output", step, host, stream, data }),
        })
        .catch(failed);
      return { kind: "step", ...result };
    } catch (error) {
      return { kind: "step", ...failed(error) };
    } finally {
      runs?.folders.release(runId);
    }
  }
}
