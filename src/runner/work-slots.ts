import type { Logger } from "../core/logger.js";

/** How long a dropped job's slot waits for its processes by default: the kill grace and more. */
export const defaultDroppedSlotMs = 15_000;

/**
 * The runner's own count of the work (steps, agent turns) whose processes live, against its
 * capacity; bots have slots of their own, as the server counts them (`claimJob`).
 *
 * The server frees a job's slot when it drops the job (its run was canceled while parked, its
 * lease ran out), and may assign the next job at once. The dropped job's processes may live on
 * until the kill grace ends (a step that ignores SIGTERM). A job assigned meanwhile waits here
 * for them, so that no more than `capacity` jobs' processes run at once on this runner. A dropped
 * job whose processes outlive `droppedMs` (a handler that hangs) gives its slot up then anyway:
 * one stuck job never holds the runner's work back for good.
 */
export class WorkSlots {
  private readonly holders = new Set<string>();
  private readonly waiting: Array<{ jobId: string; start: () => void }> = [];
  private readonly late = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly capacity: number,
    private readonly droppedMs = defaultDroppedSlotMs,
  ) {}

  /** Takes a slot for `jobId` now if one is free (and no job waits for one); false otherwise. */
  tryTake(jobId: string): boolean {
    if (this.holders.size >= this.capacity || this.waiting.length > 0) return false;
    this.holders.add(jobId);
    return true;
  }

  /** Resolves once `jobId` holds a slot; in the order asked. */
  take(jobId: string): Promise<void> {
    if (this.tryTake(jobId)) return Promise.resolve();
    return new Promise((start) => this.waiting.push({ jobId, start }));
  }

  /** `jobId`'s processes are gone: its slot goes to the job that waited longest. Once per job. */
  free(jobId: string): void {
    clearTimeout(this.late.get(jobId));
    this.late.delete(jobId);
    if (!this.holders.delete(jobId)) return;
    const next = this.waiting.shift();
    if (!next) return;
    this.holders.add(next.jobId);
    next.start();
  }

  /**
   * The server dropped `jobId`: its slot is freed when its processes are gone, or `droppedMs`
   * from now at the latest, which `logger` then warns of.
   */
  dropped(jobId: string, logger: Logger): void {
    if (!this.holders.has(jobId) || this.late.has(jobId)) return;
    const timer = setTimeout(() => {
      this.late.delete(jobId);
      logger.warn(
        { jobId, waited_ms: this.droppedMs },
        "a dropped job's processes outlived the wait for them: its slot goes to the next job",
      );
      this.free(jobId);
    }, this.droppedMs);
    timer.unref();
    this.late.set(jobId, timer);
  }

  /** Whether `jobId` waits for a slot (`take`): it has not started. */
  waits(jobId: string): boolean {
    return this.waiting.some((each) => each.jobId === jobId);
  }

  /** Jobs holding a slot. */
  get held(): number {
    return this.holders.size;
  }
}
