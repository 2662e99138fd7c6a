import { randomUUID } from "node:crypto";
import { mkdirSync, renameSync } from "node:fs";
import { readdir, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Logger } from "../core/logger.js";
import { removeTree } from "../exec/remove-tree.js";
import { RunSandbox, type RunSandboxLayout, RunSandboxSlot } from "../exec/sandbox/run-sandbox.js";
import { existingRealPath, type Sandbox } from "../exec/sandbox/sandbox.js";
import { closeTemplate } from "../exec/sandbox/sandbox-template.js";
import type { ProcessLauncher } from "../exec/types.js";

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
  /** What makes and enters the sandboxes: the fork-server (ProcessExecutor.sandboxLauncher). */
  launcher: ProcessLauncher;
  /** Sandboxes kept made ahead of their runs (RUNYARD_SANDBOX_POOL). */
  pool: number;
  /** The steps' `$HOME` (the runner's HOME), where the run's home folder is shown. */
  home: string | undefined;
  /** How long a run's sandbox outlives its last command, where the server never says the run's end. */
  idleMs: number;
  /** The longest a taken pooled sandbox waits to be made again (see `takePooled`); 250 ms if unset. */
  refillWaitMs?: number;
  onProblem?: (problem: string) => void;
}

/**
 * Each run's folders on a sandboxing runner, and its sandbox: the run's steps here share a folder
 * (unless one names a cwd), /tmp and `$HOME` (so `echo x > /tmp/f` then `cat /tmp/f` works as on
 * any CI system), and no other run sees them. The folder is under the work folder's `runs/`
 * (hidden from all but the run's own commands); /tmp, home and scratch under the runner's state
 * folder, which no sandboxed command sees; each 0700, owned by the runner's user (a sandbox's uid).
 *
 * They last as long as the run: the server says its end (`run_ended`, `ended`), and they go once
 * no job of it is held here, however long it waited between steps (an approval, other hosts). A
 * reconnecting runner names the runs it keeps (`kept`) and is told which ended meanwhile.
 *
 * The timers are for a server older than `run_ended` (`serverTellsEnds(false)`): folders go after
 * `keepMs` without a job here, the sandbox `idleMs` after its last command. Otherwise `keepMs`
 * only logs the idle run.
 */
export class RunFolders {
  private readonly held = new Map<string, Held>();
  /** Runs the server said ended while nothing of them was here, newest last (`endedEarlyKept`). */
  private readonly endedEarly = new Set<string>();
  private told = false;
  /** Removals under way: a job of the same run that comes meanwhile waits for its new folders. */
  private readonly removing = new Map<string, Promise<void>>();
  /** Sandboxes made ahead of their runs, each with folders of its own not yet named after a run. */
  private readonly pool: Array<Promise<Pooled | undefined>> = [];
  /** Set while a taken sandbox waits to be replaced (see `takePooled`). */
  private refill: NodeJS.Timeout | undefined;
  private poolFailed = false;
  private closed = false;
  /**
   * The real paths of `root` and `runsRoot` (of their deepest existing part, the rest as named),
   * resolved at the first place: the runner's own folders, which only its operator moves, and not
   * while it runs.
   */
  private realRoots: { root: string; runsRoot: string } | undefined;

  constructor(
    /** The runner's private folder for the runs' /tmp, home and scratch files. */
    private readonly root: string,
    /** Where the runs' own folders go (`<work>/runs`). */
    private readonly runsRoot: string,
    private readonly keepMs: number,
    private readonly sandbox?: RunSandboxSettings,
    private readonly logger?: Logger,
  ) {}

  /** Whether the server says each run's end (its welcome's `run_ends`). */
  serverTellsEnds(yes: boolean): void {
    this.told = yes;
  }

  /** The runs whose folders are here, for the runner's hello: the server answers those that ended. */
  kept(): string[] {
    return [...this.held.keys()];
  }

  /**
   * The run is over: its sandbox and folders go now, or once its jobs here end. A run with nothing
   * here is remembered a while, so a job of it that comes after all is cleaned up as it ends.
   */
  ended(runId: string): void {
    const entry = this.held.get(runId);
    if (!entry) {
      // Its job may still be on its way to `hold` (the run was canceled as it was assigned).
      this.endedEarly.add(runId);
      if (this.endedEarly.size > endedEarlyKept)
        this.endedEarly.delete(this.endedEarly.values().next().value!);
      return;
    }
    entry.ended = true;
    if (entry.jobs === 0) this.remove(runId, entry, "its run ended");
  }

  /**
   * Removes what a previous life of the runner left, as a run's end does (a step's tree deeper than
   * a path can name); returns the folders it removed. One it cannot remove is said, not thrown:
   * the runner starts all the same.
   */
  async cleanLeftovers(): Promise<string[]> {
    const paths: string[] = [];
    for (const root of [this.root, this.runsRoot]) {
      const names = await readdir(root).catch(() => [] as string[]);
      paths.push(...names.map((name) => join(root, name)));
    }
    await Promise.all(
      paths.map((path) =>
        removeFolder(path).catch((error: unknown) =>
          this.logger?.warn(
            { err: error, path },
            "cannot remove a run's folder left by this runner's previous life",
          ),
        ),
      ),
    );
    return paths;
  }

  /** Makes the pool's sandboxes (after `cleanLeftovers`), and again after one is taken (`takePooled`). */
  fillPool(): void {
    const settings = this.sandbox;
    if (!settings || this.poolFailed || this.closed) return;
    while (this.pool.length < settings.pool) this.pool.push(this.makePooled(settings));
  }

  /** The run's place, made if new; it stays until `release` was called for each `hold`. */
  async hold(runId: string): Promise<RunPlace> {
    let entry = this.held.get(runId);
    if (entry?.removal) clearTimeout(entry.removal);
    if (entry) entry.removal = undefined;
    if (!entry) {
      entry = { jobs: 0, place: this.placeFor(runId), ended: this.endedEarly.has(runId) };
      this.held.set(runId, entry);
    }
    entry.jobs += 1;
    return entry.place;
  }

  /** One job of the run ended; after the last, its folders go if the run ended, else wait (`keepFor`). */
  release(runId: string): void {
    const entry = this.held.get(runId);
    if (!entry) return;
    entry.jobs -= 1;
    if (this.refill) this.refillPool();
    if (entry.jobs > 0) return;
    if (entry.ended) this.remove(runId, entry, "its run ended");
    else this.keepFor(runId, entry);
  }

  private keepFor(runId: string, entry: Held): void {
    entry.removal = setTimeout(() => {
      entry.removal = undefined;
      if (!this.told) {
        this.remove(runId, entry, `it held no job here for ${this.keepMs / 1000} s`);
        return;
      }
      this.logger?.info(
        { runId },
        `run ${runId} held no job here for ${this.keepMs / 1000} s: its folders stay until it ends`,
      );
      this.keepFor(runId, entry);
    }, this.keepMs);
    entry.removal.unref();
  }

  /** Ends the run's sandbox and removes its folders; a job of the run meanwhile waits for new ones. */
  private remove(runId: string, entry: Held, why: string): void {
    clearTimeout(entry.removal);
    if (this.held.get(runId) !== entry) return;
    this.held.delete(runId);
    const removal = entry.place
      .then((place) => this.removePlace(place))
      .then(
        () => this.logger?.info({ runId }, `removed run ${runId}'s folders and sandbox: ${why}`),
        (error: unknown) => this.logger?.warn({ err: error, runId }, "cannot remove a run's folders"),
      )
      .finally(() => this.removing.delete(runId));
    this.removing.set(runId, removal);
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.refill);
    this.refill = undefined;
    const entries = [...this.held.values()];
    for (const entry of entries) if (entry.removal) clearTimeout(entry.removal);
    this.held.clear();
    const pooled = this.pool.splice(0);
    await Promise.all([
      ...entries.map((entry) => entry.place.then((place) => place.sandbox?.close()).catch(() => undefined)),
      ...pooled.map((made) => made.then((each) => each?.box.close())),
    ]);
    // The template the runs' sandboxes were cloned from, with the last of them.
    if (this.sandbox) await closeTemplate(this.sandbox.launcher, this.sandbox.sandbox);
    await Promise.all(this.removing.values());
    await removeFolder(this.root);
    await removeFolder(this.runsRoot);
  }

  private async placeFor(runId: string): Promise<RunPlace> {
    await this.removing.get(runId);
    const settings = this.sandbox;
    const taken = settings && (await this.takePooled(settings, runId));
    if (taken) return taken;
    const place = this.placeNamed(folderName(runId));
    this.makeFolders(place);
    if (settings) {
      place.sandbox = new RunSandboxSlot(
        settings.sandbox,
        layoutOf(place, settings),
        this.slotOptions(settings),
      );
    }
    return place;
  }

  /**
   * The folders of a place named `name`: its own under the runs' root, the rest private. Named by
   * the roots' real paths, where a command's cwd is judged and its sandbox binds them, so that a
   * runner whose home is a link shows a run its folder where the run's commands start.
   */
  private placeNamed(name: string): RunPlace {
    this.realRoots ??= { root: existingRealPath(this.root), runsRoot: existingRealPath(this.runsRoot) };
    const private_ = join(this.realRoots.root, name);
    return {
      folder: join(this.realRoots.runsRoot, name),
      tmp: join(private_, "tmp"),
      home: join(private_, "home"),
      scratch: join(private_, "scratch"),
    };
  }

  /** A sandbox of the pool, given the run's folder; undefined when the pool has none to give. */
  private async takePooled(settings: RunSandboxSettings, runId: string): Promise<RunPlace | undefined> {
    const next = this.pool.shift();
    if (!next) return undefined;
    // Replaced once a job of a run here ends, or `refillWaitMs` from now if none does: making a
    // sandbox takes the machine's CPU, and a refill begun now took it from this run's first command
    // (its start and first output, a third slower each on two cores). A second take meanwhile (a
    // burst of runs) refills at once, so that the burst's next run finds one under way.
    if (this.refill) this.refillPool();
    else {
      this.refill = setTimeout(() => this.refillPool(), settings.refillWaitMs ?? refillWaitMs);
      this.refill.unref();
    }
    const pooled = await next;
    if (!pooled) return undefined;
    // Shown at their host paths: renamed on the host now, inside the sandbox (by path) by the
    // request that starts its first command (RunSandboxSlot), which nothing of the run's precedes.
    const place = this.placeNamed(folderName(runId));
    const private_ = join(place.tmp, "..");
    // On the event loop: a rename in one folder of the runner's own frees no block (no discard
    // wait, unlike `rmdir`), and each call through libuv's pool cost this run's path a hand-off to
    // a pool thread and back (0.4 ms of CPU each on a paravirtualized host).
    const renamed = renamedAll([
      [pooled.place.folder, place.folder],
      [join(pooled.place.tmp, ".."), private_],
    ]);
    this.forgetFolders(pooled.place);
    if (renamed) {
      // Renamed by the runner within its own folders: their real paths follow from the roots'.
      this.rememberFolders(place, { folder: true, private: true });
      place.sandbox = new RunSandboxSlot(settings.sandbox, layoutOf(place, settings), {
        ...this.slotOptions(settings),
        made: pooled.box,
        movesFirst: [
          [pooled.place.folder, place.folder],
          ...scratchFolders.map(
            (name) => [join(pooled.place.scratch, name), join(place.scratch, name)] as const,
          ),
        ],
      });
      return place;
    }
    await pooled.box.close();
    // Wherever the renames left them: the first may have gone through and the second not.
    await Promise.all([this.removePlace(pooled.place), this.removePlace(place)]);
    return undefined;
  }

  private refillPool(): void {
    clearTimeout(this.refill);
    this.refill = undefined;
    this.fillPool();
  }

  private slotOptions(settings: RunSandboxSettings) {
    const idleMs = (): number | undefined => (this.told ? undefined : settings.idleMs);
    return { idleMs, ...(settings.onProblem ? { onProblem: settings.onProblem } : {}) };
  }

  private async makePooled(settings: RunSandboxSettings): Promise<Pooled | undefined> {
    const place = this.placeNamed(`.pool-${randomUUID()}`);
    try {
      this.makeFolders(place);
      const box = await RunSandbox.make(settings.launcher, settings.sandbox, layoutOf(place, settings));
      if (box instanceof RunSandbox && !this.closed) return { box, place };
      if (box instanceof RunSandbox) await box.close();
      else if (!this.poolFailed) {
        // Not retried: each run then makes its own at its first step, and says why if it cannot.
        this.poolFailed = true;
        settings.onProblem?.(box.problem);
      }
    } catch (error) {
      this.poolFailed = true;
      settings.onProblem?.(error instanceof Error ? error.message : String(error));
    }
    await this.removePlace(place);
    return undefined;
  }

  /**
   * Makes a place's folders (`makeFolders`), and tells the runs' sandbox the real paths of those it
   * made now and looks up at each command (`Sandbox.madeFolder`): looked up once each, not ten
   * `realpath`s a run.
   */
  private makeFolders(place: RunPlace): void {
    this.rememberFolders(place, makeFolders(place));
  }

  /** Made under the roots' real paths (`placeNamed`), each folder made now is its own real path. */
  private rememberFolders(place: RunPlace, made: { folder: boolean; private: boolean }): void {
    const sandbox = this.sandbox?.sandbox;
    if (!sandbox) return;
    if (made.folder) sandbox.madeFolder(place.folder, place.folder);
    if (!made.private) return;
    for (const name of scratchFolders)
      sandbox.madeFolder(join(place.scratch, name), join(place.scratch, name));
  }

  private forgetFolders(place: RunPlace): void {
    const sandbox = this.sandbox?.sandbox;
    for (const folder of [place.folder, ...scratchFolders.map((name) => join(place.scratch, name))])
      sandbox?.forgetFolder(folder);
  }

  /** Forgets the place's folders (a folder of the same name later is looked up anew), then `removePlace`. */
  private removePlace(place: RunPlace): Promise<void> {
    this.forgetFolders(place);
    return removePlace(place);
  }
}

/** A run's scratch folders: the steps' `$RUNYARD_OUTPUT` files, and their scripts. */
const scratchFolders = ["outputs", "scripts"] as const;

const endedEarlyKept = 1000;
/** The longest a taken pooled sandbox waits to be replaced while the runs here keep their jobs (default). */
const refillWaitMs = 250;

interface Held {
  jobs: number;
  place: Promise<RunPlace>;
  /** The fallback timer (see RunFolders), running while no job of the run is held. */
  removal?: NodeJS.Timeout | undefined;
  ended?: boolean;
}

interface Pooled {
  box: RunSandbox;
  place: RunPlace;
}

function layoutOf(place: RunPlace, settings: RunSandboxSettings): RunSandboxLayout {
  // The runner writes the steps' scripts where the run may only read (process.ts).
  return {
    folder: place.folder,
    scratch: [join(place.scratch, "outputs")],
    readable: [join(place.scratch, "scripts")],
    tmp: place.tmp,
    home: settings.home,
    homeFolder: place.home,
    runnerMadeCwd: true,
  };
}

/**
 * Makes a place's folders, each 0700, and says which of its run's folder and private folder (of
 * /tmp, home and scratch) it made now, rather than found: only a folder made now is known not to
 * be a link. The workspace above the runs' root keeps its mode: a sandboxed agent's container, as
 * another user, goes through it to its worktree. On the event loop: a few `mkdir`s in the runner's
 * own folders cost less than handing each to libuv's pool and back (docs/benchmarks.md, "A run's
 * folders made and removed on the event loop").
 */
function makeFolders(place: RunPlace): { folder: boolean; private: boolean } {
  mkdirSync(dirname(dirname(place.folder)), { recursive: true });
  // A recursive mkdir returns the first folder it made, undefined if all were there.
  const folder = mkdirSync(place.folder, { recursive: true, mode: 0o700 }) !== undefined;
  // Made now if made with /tmp inside it (the first folder made is it or above it), not just /tmp.
  const first = mkdirSync(place.tmp, { recursive: true, mode: 0o700 });
  for (const each of [place.home, ...scratchFolders.map((name) => join(place.scratch, name))])
    mkdirSync(each, { recursive: true, mode: 0o700 });
  return { folder, private: first !== undefined && first !== place.tmp };
}

/**
 * Ends the place's sandbox, then removes its folders, links in them removed, not followed, the
 * run's commands ended (`removeFolder`).
 */
async function removePlace(place: RunPlace): Promise<void> {
  await place.sandbox?.close();
  await Promise.all([place.folder, join(place.tmp, "..")].map(removeFolder)).catch(() => undefined);
}

/**
 * Removes the folder by `removeTree`, at any depth; what that walk leaves (past its steps, a
 * folder it cannot open) is removed by path.
 */
async function removeFolder(folder: string): Promise<void> {
  if (!(await removeTree(folder).catch(() => false))) await rm(folder, { recursive: true, force: true });
}

/** A folder's name for a run id: the id where it is a plain name, else encoded. */
function folderName(runId: string): string {
  return /^[A-Za-z0-9_-]+$/.test(runId) ? runId : `run-${encodeURIComponent(runId)}`;
}

/** Renames each pair `from` -> `to`; false once one fails (the pooled sandbox is then not used). */
function renamedAll(pairs: readonly (readonly [string, string])[]): boolean {
  try {
    for (const [from, to] of pairs) renameSync(from, to);
    return true;
  } catch {
    return false;
  }
}
