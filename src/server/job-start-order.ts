import type { Job } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { JobRecord, Store } from "../store/index.js";

/** How long a runner's first batch waits for its engine elsewhere to store the job's start. */
const startWaitMs = 1500;
const pollMs = 20;
/** Jobs remembered as started; past this the memory starts over (each costs a read again). */
const rememberedJobs = 10_000;

/**
 * Keeps a run's log in the order things happened when a job's engine lives on another replica:
 * the runner's output goes straight into the store here, while `run.started` and `step.started`
 * come from the engine once it hears the job was accepted. A job's first batch waits until they
 * are stored (or `startWaitMs` passes: an engine that died with its replica says nothing until
 * the run is adopted, and output is never held back longer than that).
 */
export class JobStartOrder {
  private readonly started = new Set<string>();

  constructor(
    private readonly store: Pick<Store, "events">,
    private readonly logger: Logger,
  ) {}

  async stored(record: JobRecord, job: Job): Promise<void> {
    if (this.started.has(record.id)) return;
    const deadline = Date.now() + startWaitMs;
    while (!(await this.isStored(record.run_id, job))) {
      if (Date.now() >= deadline) {
        this.logger.warn(
          { jobId: record.id, runId: record.run_id },
          "stored a job's output before its start: its run's engine did not record the start in time",
        );
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    if (this.started.size >= rememberedJobs) this.started.clear();
    this.started.add(record.id);
  }

  forget(jobId: string): void {
    this.started.delete(jobId);
  }

  private async isStored(runId: string, job: Job): Promise<boolean> {
    if (job.kind !== "step") {
      return (await this.store.events.list(runId, { types: ["run.started"], limit: 1 })).length > 0;
    }
    const { step, host, attempt } = job.payload;
    const starts = await this.store.events.list(runId, { types: ["step.started"], limit: 10_000 });
    return starts.some(
      (event) =>
        event.type === "step.started" &&
        event.step === step &&
        event.host === host &&
        event.attempt === attempt,
    );
  }
}
