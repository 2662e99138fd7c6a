import { type Job, jobHost } from "../core/jobs/index.js";
import type { JobRecord } from "../store/index.js";
import { readJob } from "./job-records.js";

/**
 * Where each run's hosts landed: a `{}` or `{group, labels}` host sticks to the runner that took
 * its first job, so its later steps find the files the earlier ones left.
 */
export class HostPins {
  /** run id -> host -> runner id. */
  private readonly pins = new Map<string, Map<string, string>>();

  /** The runner the run's host is pinned to, if any. */
  runnerFor(runId: string, host: string): string | undefined {
    return this.pins.get(runId)?.get(host);
  }

  /** Remembers where the job's host landed, unless it landed somewhere already. */
  pin(record: JobRecord, runnerId: string): void {
    const job = readJob(record);
    if (job) this.pinJob(record.run_id, job, runnerId);
  }

  /** As `pin`, from the job itself (its engine's, not read from its row). */
  pinJob(runId: string, job: Job, runnerId: string): void {
    let hosts = this.pins.get(runId);
    if (!hosts) {
      hosts = new Map();
      this.pins.set(runId, hosts);
    }
    const host = jobHost(job);
    if (!hosts.has(host)) hosts.set(host, runnerId);
  }

  /** The host's runner is gone: its next job may go to any runner that matches. */
  unpin(runId: string, host: string): void {
    this.pins.get(runId)?.delete(host);
  }

  forgetRun(runId: string): void {
    this.pins.delete(runId);
  }
}
