/** The label naming the runner that made a container: its next start knows its leftovers by it. */
export const runnerLabel = "runyard.runner";
/**
 * The label naming the install (the server's id, kept in its database) a container belongs to:
 * installs that share a Docker engine (a staging `runyard up` beside production) tell their
 * containers apart by it, whatever their runners are called.
 */
export const installLabel = "runyard.install";

/**
 * Whose containers a runner makes, adopts and removes: its own id and the install its server
 * said in the welcome. Until a welcome says one (or with a server too old to say it) the install
 * is unknown, and the runner owns only containers that carry no install label.
 */
export class RunnerInstall {
  private current: string | undefined;

  constructor(readonly runnerId: string) {}

  /** The install of the last welcome; undefined before one, or from a server that names none. */
  get id(): string | undefined {
    return this.current;
  }

  /** What the welcome said; every container made from now on carries it. */
  learned(installId: string | undefined): void {
    this.current = installId;
  }

  /** The labels every container this runner makes carries. */
  labels(): Record<string, string> {
    return {
      [runnerLabel]: this.runnerId,
      ...(this.current !== undefined ? { [installLabel]: this.current } : {}),
    };
  }

  /**
   * Whether a container of these labels is this runner's to adopt or remove: made by this runner
   * id for this install. One made before containers carried an install (no label) is nobody's
   * for sure, so it is left alone where the install is known (docs/runners.md says how to remove it).
   */
  owns(labels: Record<string, string>): boolean {
    return labels[runnerLabel] === this.runnerId && labels[installLabel] === this.current;
  }
}
