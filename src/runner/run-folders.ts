import { mkdir, readdir, rm } from "node:fs/promises";
import { join } from "node:path";
import { RunSandboxSlot } from "../exec/run-sandbox.js";
import type { Sandbox } from "../exec/sandbox.js";

/** Where one run works on this runner (see RunFolders). */
export interface RunPlace {
  /** The run's own folder, `<work>/runs/<run id>`: the cwd of its steps that name none. */
  folder: string;
  /** Shown as its commands' /tmp. */
  tmp: string;
  /** Shown as its commands' `$HOME`. */
  home: string;
  /** The steps' scratch files (`$RUNYARD_OUTPUT`, scripts). */
  scratch: string;
  /** The run's sandbox, made at its first command; absent where steps are not sandboxed. */
  sandbox?: RunSandboxSlot;
}

/** How a sandboxing runner makes each run's sandbox. */
export interface RunSandboxSettings {
  sandbox: Sandbox;
  /** `$HOME` of the steps (the runner's own HOME), where the run's home folder is shown. */
  home: string | undefined;
  /** How long a run's sandbox outlives its last command (the next one makes it again). */
  idleMs: number;
  onProblem?: (problem: string) => void;
}

/**
 * The folders of each run on a sandboxing runner, and its sandbox: every step of the run that
 * runs here works in the same folder (unless it names a cwd), sees the same /tmp and `$HOME` (so
 * `echo x > /tmp/f` in one step and `cat /tmp/f` in the next work as on any CI system), and no
 * other run's command sees any of them. The run's folder lies in the runner's work folder (under
 * `runs/`, hidden from every command but the run's own); its /tmp, home and scratch files under the
 * runner's state folder, which no sandboxed command sees; each 0700 and owned by the runner's user
 * (a sandbox's uid maps to it).
 *
 * The runner learns no run's end from the server, so a run's folders go once the run has held no
 * job on this runner for `keepMs`: long enough for the gap between two steps, short enough that a
 * finished run's files do not linger. A step that comes after that gap gets new, empty folders.
 */
export class RunFolders {
  private readonly held = new Map<string, { jobs: number; place: RunPlace; removal?: NodeJS.Timeout }>();
  /** Removals under way: a job of the same run that comes meanwhile waits for its new folders. */
  private readonly removing = new Map<string, Promise<void>>();

  constructor(
    /** The runner's private folder for the runs' /tmp, home and scratch files. */
    private readonly root: string,
    /** Where the runs' own folders go (`<work>/runs`). */
    private readonly runsRoot: string,
    private readonly keepMs: number,
    private readonly sandbox?: RunSandboxSettings,
  ) {}

  /** Removes what a previous life of the runner left; returns the folders it removed. */
  async cleanLeftovers(): Promise<string[]> {
    const paths: string[] = [];
    for (const root of [this.root, this.runsRoot]) {
      const names = await readdir(root).catch(() => [] as string[]);
      paths.push(...names.map((name) => join(root, name)));
    }
    await Promise.all(paths.map((path) => rm(path, { recursive: true, force: true })));
    return paths;
  }

  /** The run's place, made if new; it stays until `release` was called for each `hold`. */
  async hold(runId: string): Promise<RunPlace> {
    const name = folderName(runId);
    let entry = this.held.get(runId);
    if (entry?.removal) clearTimeout(entry.removal);
    if (entry) entry.removal = undefined;
    if (!entry) {
      const private_ = join(this.root, name);
      const place: RunPlace = {
        folder: join(this.runsRoot, name),
        tmp: join(private_, "tmp"),
        home: join(private_, "home"),
        scratch: join(private_, "scratch"),
      };
      const settings = this.sandbox;
      if (settings) {
        place.sandbox = new RunSandboxSlot(
          settings.sandbox,
          {
            folder: place.folder,
            scratch: [place.scratch],
            tmp: place.tmp,
            home: settings.home,
            homeFolder: place.home,
            runnerMadeCwd: true,
          },
          { idleMs: settings.idleMs, ...(settings.onProblem ? { onProblem: settings.onProblem } : {}) },
        );
      }
      entry = { jobs: 0, place };
      this.held.set(runId, entry);
    }
    entry.jobs += 1;
    await this.removing.get(runId);
    const { place } = entry;
    // Makes the roots too, 0700 as well, when they are missing.
    await Promise.all(
      [place.folder, place.tmp, place.home, place.scratch].map((folder) =>
        mkdir(folder, { recursive: true, mode: 0o700 }),
      ),
    );
    return place;
  }

  /** One job of the run ended; its folders go `keepMs` after the last one, unless another comes. */
  release(runId: string): void {
    const entry = this.held.get(runId);
    if (!entry) return;
    entry.jobs -= 1;
    if (entry.jobs > 0) return;
    entry.removal = setTimeout(() => {
      this.held.delete(runId);
      const { place } = entry;
      const removal = (async () => {
        await place.sandbox?.close();
        await Promise.all(
          [place.folder, join(place.tmp, "..")].map((folder) =>
            rm(folder, { recursive: true, force: true }).catch(() => undefined),
          ),
        );
      })().finally(() => this.removing.delete(runId));
      this.removing.set(runId, removal);
    }, this.keepMs);
    entry.removal.unref();
  }

  /** Ends every run's sandbox and removes every folder at once (the runner stops). */
  async close(): Promise<void> {
    const places = [...this.held.values()];
    for (const entry of places) if (entry.removal) clearTimeout(entry.removal);
    this.held.clear();
    await Promise.all(places.map((entry) => entry.place.sandbox?.close()));
    await Promise.all(this.removing.values());
    await rm(this.root, { recursive: true, force: true });
    await rm(this.runsRoot, { recursive: true, force: true });
  }
}

/** A folder's name for a run id: the prefix-free id where it is a plain name, else encoded. */
function folderName(runId: string): string {
  return /^[A-Za-z0-9_-]+$/.test(runId) ? runId : `run-${encodeURIComponent(runId)}`;
}
