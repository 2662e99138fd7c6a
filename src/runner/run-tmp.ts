import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";

/**
 * One private /tmp per run on this runner, for a sandboxed runner: every step of the run that
 * runs here sees the same folder as its /tmp (so `echo x > /tmp/f` in one step and `cat /tmp/f`
 * in the next work as on any CI system), and no other run's command sees it. The folders live
 * under the runner's state folder, which no sandboxed command sees, each 0700 and owned by the
 * runner's user (a sandbox's uid maps to it).
 *
 * The runner learns no run's end from the server, so a folder goes once the run has held no job
 * on this runner for `keepMs`: long enough for the gap between two steps, short enough that a
 * finished run's files do not linger. A step that comes after that gap gets a new, empty /tmp.
 */
export class RunTmpFolders {
  private readonly held = new Map<string, { jobs: number; removal?: NodeJS.Timeout }>();
  /** Removals under way: a job of the same run that comes meanwhile waits for its new folder. */
  private readonly removing = new Map<string, Promise<void>>();

  constructor(
    private readonly root: string,
    private readonly keepMs: number,
  ) {}

  /** Removes what a previous life of the runner left; returns the folders it removed. */
  async cleanLeftovers(): Promise<string[]> {
    const paths = (await readdir(this.root).catch(() => [])).map((name) => join(this.root, name));
    await Promise.all(paths.map((path) => rm(path, { recursive: true, force: true })));
    return paths;
  }

  /** The run's /tmp folder, made if new; it stays until `release` was called for each `hold`. */
  async hold(runId: string): Promise<string> {
    const entry = this.held.get(runId) ?? { jobs: 0 };
    if (entry.removal) clearTimeout(entry.removal);
    entry.removal = undefined;
    entry.jobs += 1;
    this.held.set(runId, entry);
    await this.removing.get(runId);
    const folder = this.folderOf(runId);
    // Makes the root too, 0700 as well, when it is missing.
    await mkdir(folder, { recursive: true, mode: 0o700 });
    return folder;
  }

  /** One job of the run ended; the folder goes `keepMs` after the last one, unless another comes. */
  release(runId: string): void {
    const entry = this.held.get(runId);
    if (!entry) return;
    entry.jobs -= 1;
    if (entry.jobs > 0) return;
    entry.removal = setTimeout(() => {
      this.held.delete(runId);
      const removal = rm(this.folderOf(runId), { recursive: true, force: true })
        .catch(() => undefined)
        .finally(() => this.removing.delete(runId));
      this.removing.set(runId, removal);
    }, this.keepMs);
    entry.removal.unref();
  }

  /** Removes every folder at once (the runner stops). */
  async close(): Promise<void> {
    for (const entry of this.held.values()) if (entry.removal) clearTimeout(entry.removal);
    this.held.clear();
    await Promise.all(this.removing.values());
    await rm(this.root, { recursive: true, force: true });
  }

  private folderOf(runId: string): string {
    // The prefix keeps an id of "." or ".." a name inside the root.
    return join(this.root, `run-${encodeURIComponent(runId)}`);
  }
}
