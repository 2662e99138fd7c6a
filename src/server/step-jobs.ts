import type { Job } from "../core/jobs/index.js";
import type { StepRunner } from "../core/step-attempt.js";
import type { JobQueue } from "./job-queue.js";
import type { HostPlacement } from "./job-queue-options.js";
import { jobIdFor, stepResult } from "./job-records.js";
import type { RunSink } from "./run-sink.js";

/**
 * A StepRunner whose attempts become `step` jobs for matching runners. Their output never
 * passes `io.onOutput`: the runner masks it and reports it as `step.output` events, which
 * `events` stores as they are.
 */
export function queuedStepRunner(
  queue: Pick<JobQueue, "runJob">,
  runId: string,
  sink: RunSink,
  placement: HostPlacement,
  tenantId: string | null,
): StepRunner {
  return {
    // The attempt starts when a runner accepts its job (`accept`), not when it is queued.
    startsLater: true,
    runAttempt: async (request, io) => {
      const job: Job = { job_id: jobIdFor(request), kind: "step", payload: request };
      return stepResult(await queue.runJob(job, { runId, sink, tenantId }, placement, io.signal, io.started));
    },
  };
}
