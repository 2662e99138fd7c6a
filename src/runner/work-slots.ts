/**
 * The runner's own count of the work (steps, agent turns) whose processes live, against its
 * capacity; bots have slots of their own, as the server counts them (`claimJob`).
 *
 * The server frees a job's slot when it drops the job (its run was canceled while parked, its
 * lease ran out), and may assign the next job at once. The dropped job's processes may live on
 * until the kill grace ends (a step that ignores SIGTERM). A job assigned meanwhile waits here
 * for them, so that no more than `capacity` jobs' processes run at once on this runner.
 */
export class WorkSlots {
  private live = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly capacity: number) {}

  /** Takes a slot now if one is free; false when every slot is held. */
  tryTake(): boolean {
    if (this.live >= this.capacity || this.waiting.length > 0) return false;
    this.live++;
    return true;
  }

  /** Resolves once a slot is free, taking it; in the order asked. */
  take(): Promise<void> {
    if (this.tryTake()) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  /** A job's processes are gone: its slot goes to the job that waited longest, if any. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.live = Math.max(0, this.live - 1);
  }

  /** Jobs whose processes live. */
  get held(): number {
    return this.live;
  }
}
