import type { Job } from "../core/jobs/index.js";
import type { Logger } from "../core/logger.js";
import type { JobRecord, Store } from "../store/index.js";

/** How long a runner's batch waits for its engine elsewhere to store the job's start before it is held. */
const startWaitMs = 1500;
const pollMs = 20;
/** `step.started` events read at once while looking for a job's. */
const startsPage = 1000;
/** Jobs remembered as started (or as held once); past this the memory starts over (each costs a read again). */
const rememberedJobs = 10_000;

/**
 * Keeps a run's log in the order things happened when a job's engine lives on another replica:
 * the runner's output goes straight into the store here, while `run.started` and `step.started`
 * come from the engine once it hears the job was accepted. A job's batch is stored only once they
 * are, whatever fails in between: it waits up to `startWaitMs` for them, and is held past that
 * (neither stored nor acknowledged, so the runner sends it again) while the engine cannot store
 * them: its database is away, or it died with its replica and the run waits to be adopted.
 */
export class JobStartOrder {
  private readonly started = new Set<string>();
  /** Jobs whose batches were held: said once in the log, not at every resend. */
  private readonly held = new Set<string>();

  constructor(
    private readonly store: Pick<Store, "events">,
    private readonly logger: Logger,
  ) {}

  /** Whether the job's start is stored, waiting up to `startWaitMs` for it; false: hold the batch. */
  async stored(record: JobRecord, job: Job): Promise<boolean> {
    if (this.started.has(record.id)) return true;
    const deadline = Date.now() + startWaitMs;
    while (!(await this.isStored(record.run_id, job))) {
      if (Date.now() >= deadline) {
        if (!this.held.has(record.id)) {
          if (this.held.size >= rememberedJobs) this.held.clear();
          this.held.add(record.id);
          this.logger.warn(
            { jobId: record.id, runId: record.run_id },
            "held a job's output: its run's engine has not stored the start yet; the runner sends it again",
          );
        }
        return false;
      }
      await new Promise((resolve) => setTimeout(resolve, pollMs));
    }
    if (this.started.size >= rememberedJobs) this.started.clear();
    this.started.add(record.id);
    this.held.delete(record.id);
    return true;
  }

  forget(jobId: string): void {
    this.started.delete(jobId);
    this.held.delete(jobId);
  }

  private async isStored(runId: string, job: Job): Promise<boolean> {
    if (job.kind !== "step") {
      return (await this.store.events.list(runId, { types: ["run.started"], limit: 1 })).length > 0;
    }
    const { step, host, attempt } = job.payload;
    // Newest first, where a job's start is, and every page of them: a start past the first page
    // that were never found would hold the job's output for good.
    for (let before = Number.MAX_SAFE_INTEGER; ; ) {
      const starts = await this.store.events.list(runId, {
        types: ["step.started"],
        before,
        limit: startsPage,
      });
      const found = starts.some(
        (event) =>
          event.type === "step.started" &&
          event.step === step &&
          event.host === host &&
          event.attempt === attempt,
      );
      if (found) return true;
      const oldest = starts[0]?.seq;
      if (starts.length < startsPage || oldest === undefined) return false;
      before = oldest;
    }
  }
}
