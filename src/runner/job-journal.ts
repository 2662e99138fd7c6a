import { mkdirSync, readdirSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/**
 * The jobs a runner holds, one empty file each under `<state>/jobs/`, so that its next life
 * knows which jobs died with it and can tell the server at once (hello's `reaped`).
 */
export class JobJournal {
  private readonly dir: string;
  /** Jobs the previous life of this runner held; none of them can be resumed by this one. */
  readonly previous: string[];

  constructor(stateDir: string) {
    this.dir = join(stateDir, "jobs");
    let names: string[] = [];
    try {
      names = readdirSync(this.dir);
    } catch {
      // first start
    }
    this.previous = names.map(decodeURIComponent);
    rmSync(this.dir, { recursive: true, force: true });
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
  }

  add(jobId: string): void {
    writeFileSync(join(this.dir, encodeURIComponent(jobId)), "", { mode: 0o600 });
  }

  remove(jobId: string): void {
    try {
      unlinkSync(join(this.dir, encodeURIComponent(jobId)));
    } catch {
      // not held
    }
  }
}
