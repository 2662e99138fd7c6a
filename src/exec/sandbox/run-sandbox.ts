import { resolve, sep } from "node:path";
import {
  type ExecRequest,
  type ExecResult,
  type ProcessLauncher,
  RUN_FOLDERS_NOT_ATTACHED,
  type RunSandboxEntry,
  type SandboxNetwork,
  type SandboxToEnter,
} from "../types.js";
import { RunCgroup } from "./run-cgroup.js";
import { realPath, type Sandbox, type SandboxExposure } from "./sandbox.js";
import {
  holderCommand,
  holderLives,
  namespacesOf,
  SANDBOX_NAMESPACES,
  type StartedHolder,
  startHolder,
} from "./sandbox-holder.js";
import { attachPlainTcp, detachPlainTcp } from "./sandbox-tcp.js";
import { templateFor } from "./sandbox-template.js";

export { SANDBOX_NAMESPACES };

/** The folders a run's sandbox is made with: what every command of the run may see and change. */
export interface RunSandboxLayout {
  /** The run's own folder: the cwd of its commands that name none. */
  folder: string;
  /** The runner's folders for the run's scratch files (`$RUNYARD_OUTPUT`), shown read-write. */
  scratch: string[];
  /** Shown read-only. */
  readable?: string[];
  /** The run's /tmp (see the runner's RunFolders). */
  tmp: string;
  /** `$HOME` of the run's commands. */
  home?: string | undefined;
  /** The run's folder shown as `$HOME`, kept across its sandboxes; absent: an empty tmpfs there. */
  homeFolder?: string;
  /** The run's folder was made by the runner (see ExecExposure.runnerMadeCwd). */
  runnerMadeCwd?: boolean;
  /** A network of its own (sandbox-network.ts), that of its first command; absent: the host's. */
  network?: SandboxNetwork;
}

/**
 * One sandbox per run on this runner, made once (cloned from a template, or by bubblewrap) and entered by each command (the
 * fork-server joins its namespaces, 'E'), as `docker exec` enters a job container: a command costs
 * a fork, not a sandbox. A run's commands share its /tmp, `$HOME` and folders; no other run sees
 * them. A command whose folders it was not made with is not `covers`ed and gets a sandbox of its own.
 */
export class RunSandbox {
  /** Closed, or its holder killed from inside. */
  gone = false;

  private constructor(
    readonly holder: SandboxToEnter,
    /** The fork-server that made it: it holds the sandbox's door. */
    private readonly launcher: ProcessLauncher,
    private readonly stop: AbortController,
    private readonly ended: Promise<ExecResult>,
    private readonly cgroup?: RunCgroup,
    /** The pasta giving it plain TCP, which would outlive its namespace. */
    pasta?: number,
  ) {
    ended.then(() => {
      this.gone = true;
      if (pasta !== undefined) detachPlainTcp(pasta);
    });
  }

  /**
   * Makes the sandbox through the fork-server, or says why not; a failed one leaves nothing
   * running. Cloned from the runner's template where it has one (sandbox-template.ts), else by
   * bubblewrap; a run with a network of its own always by bubblewrap.
   */
  static async make(
    launcher: ProcessLauncher,
    sandbox: Sandbox,
    layout: RunSandboxLayout,
  ): Promise<RunSandbox | { problem: string }> {
    if (!launcher.entersSandboxes) return { problem: "the fork-server is not running" };
    const exposure: SandboxExposure = {
      cwd: layout.folder,
      writable: layout.scratch,
      readable: layout.readable ?? [],
      tmp: layout.tmp,
      home: layout.home,
      ...(layout.homeFolder ? { homeFolder: layout.homeFolder } : {}),
      ...(layout.runnerMadeCwd ? { runnerMadeCwd: true } : {}),
      ...(layout.network ? { network: layout.network } : {}),
    };
    const refusal = sandbox.refusal(exposure);
    if (refusal) return { problem: refusal };
    const limit = sandbox.options.pids;
    const template = layout.network ? undefined : await templateFor(launcher, sandbox);
    if (template) {
      // Born in its cgroup: no move of its processes afterwards.
      const cgroup = limit ? await RunCgroup.make(limit.hierarchy, limit.max) : undefined;
      if (cgroup && "problem" in cgroup) return cgroup;
      const started = await startHolder(launcher, "a clone of the runner's template", (request) => ({
        ...request,
        argv: ["runyard-sandbox-clone"],
        clone: {
          template: template.holder,
          steps: template.steps(sandbox, exposure),
          ...(cgroup ? { cgroupProcs: cgroup.procsFile } : {}),
        },
      }));
      if (!("problem" in started)) return RunSandbox.enter(launcher, layout, started, cgroup, "adopted");
      await cgroup?.remove();
      // The kernel refused what bwrap does otherwise: said once, and no clone is tried again. Not
      // where the run's own folders could not be attached (a link a step of the run left where a
      // mount point goes), nor for want of memory, processes or descriptors, which passes (and a
      // member's run could bring about): that run's sandbox alone is made by bwrap.
      if (!started.problem.includes(RUN_FOLDERS_NOT_ATTACHED) && !passing.test(started.problem))
        template.refused(started.problem);
    }
    const { argv, files } = holderCommand();
    const [bwrap, ...rest] = sandbox.command(argv, exposure, files);
    const started = await startHolder(launcher, "bubblewrap", (request) => ({
      ...request,
      // --info-fd: bwrap writes the host pid of the sandbox's pid 1 on stdout, then closes it.
      argv: [bwrap!, "--info-fd", "1", ...rest],
    }));
    if ("problem" in started) return started;
    // Into its cgroup before its door joins it (sandbox-entry.c), and so every command of the run.
    const cgroup = limit ? await RunCgroup.make(limit.hierarchy, limit.max) : undefined;
    if (cgroup && "problem" in cgroup) {
      started.stop.abort();
      await started.ended;
      return cgroup;
    }
    const held = cgroup?.add([started.init, started.holder]);
    if (held) {
      started.stop.abort();
      await started.ended;
      await cgroup?.remove();
      return { problem: held };
    }
    return RunSandbox.enter(launcher, layout, started, cgroup);
  }

  /**
   * A made sandbox's namespaces, plain TCP where its network has it, and its door: then it is
   * entered. A clone's door is its maker, which the fork-server adopted as it said the holder's pid
   * (native/steps.c): its first command's request opens it (sandbox-door.c's `door_start`, as 'O'
   * would), so no request of its own is sent, a wakeup of the fork-server fewer a sandbox.
   */
  private static async enter(
    launcher: ProcessLauncher,
    layout: RunSandboxLayout,
    { holder, stop, ended }: StartedHolder,
    cgroup: RunCgroup | undefined,
    door: "adopted" | "to open" = "to open",
  ): Promise<RunSandbox | { problem: string }> {
    let pasta: number | undefined;
    const abandon = async (problem: string) => {
      stop.abort();
      await ended;
      if (pasta !== undefined) detachPlainTcp(pasta);
      await cgroup?.remove();
      return { problem };
    };
    const namespaces = namespacesOf(holder);
    if (!namespaces) return abandon("the run's sandbox ended as it was made");
    // Plain TCP rules and pasta in place before any command enters.
    if (layout.network?.plainTcp !== undefined) {
      const attached = await attachPlainTcp(holder, layout.network.plainTcp()).catch((error: Error) => error);
      if (attached instanceof Error)
        return abandon(`the run's sandbox could not have plain TCP: ${attached.message}`);
      pasta = attached;
    }
    // Its door, the process its commands are forked from, already inside: a command costs a fork.
    const refused =
      door === "adopted" ? undefined : await launcher.sandboxDoor?.({ pid: holder, namespaces }, "open");
    if (refused) return abandon(`the run's sandbox could not be entered: ${refused}`);
    return new RunSandbox({ pid: holder, namespaces }, launcher, stop, ended, cgroup, pasta);
  }

  /** Not ended, and its holder the process it was made around (`holderLives`). */
  alive(): boolean {
    if (this.gone) return false;
    this.gone = !holderLives(this.holder);
    return !this.gone;
  }

  enter(request: ExecRequest, cwd: string): ExecRequest {
    return { ...request, cwd, enter: this.holder };
  }

  async close(): Promise<void> {
    // The door first: it is in the sandbox's cgroup, which cannot be removed while it lives.
    await this.launcher.sandboxDoor?.(this.holder, "done");
    this.stop.abort();
    await this.ended;
    await this.cgroup?.remove();
  }
}

/**
 * Whether `exposure` fits a sandbox made with `layout`: its folders shown, the same /tmp and `$HOME`.
 * `realOf`: the runner's sandbox's (`Sandbox.realPath`), which knows the folders the runner made.
 */
export function covers(
  layout: RunSandboxLayout,
  exposure: SandboxExposure,
  { shown, readable } = shownFolders(layout),
  realOf: (path: string) => string = realPath,
): boolean {
  const cwd = realOf(exposure.cwd);
  if (!shown.some((folder) => isWithin(cwd, folder))) return false;
  if (exposure.tmp === undefined || resolve(exposure.tmp) !== resolve(layout.tmp)) return false;
  if (exposure.home !== layout.home || exposure.homeFolder !== layout.homeFolder) return false;
  if (exposure.network?.id !== layout.network?.id) return false;
  const writable = (exposure.writable ?? []).map(realOf);
  const read = (exposure.readable ?? []).map(realOf);
  return (
    writable.every((folder) => shown.some((root) => isWithin(folder, root))) &&
    read.every((folder) => readable.some((root) => isWithin(folder, root)))
  );
}

/** Real paths `layout` shows read-write (`shown`) and at all (`readable`): asked once per sandbox. */
export function shownFolders(
  layout: RunSandboxLayout,
  realOf: (path: string) => string = realPath,
): { shown: string[]; readable: string[] } {
  const shown = [layout.folder, ...layout.scratch].map(realOf);
  return { shown, readable: [...shown, ...(layout.readable ?? []).map(realOf)] };
}

function isWithin(path: string, folder: string): boolean {
  return path === folder || folder === "/" || path.startsWith(`${folder}${sep}`);
}

/**
 * A run's sandbox as its commands meet it: made at the first it can take, entered by the next,
 * ended by `close` at the run's end. With an older server that never says the end, `idleMs` after
 * the last command ends it, remade if another comes (the run's folders, /tmp and `$HOME` are on
 * the host). A command that kills its holder has the next make another. One that cannot be made
 * is not retried: the run's commands get one each.
 */
export class RunSandboxSlot implements RunSandboxEntry {
  private made: Promise<RunSandbox | undefined> | undefined;
  private running = 0;
  private idle: NodeJS.Timeout | undefined;
  private failed = false;
  private closed = false;
  private network: SandboxNetwork | undefined;
  /** The real paths of the layout's folders, resolved at the first command. */
  private shown: ReturnType<typeof shownFolders> | undefined;
  /** Whether a command has come: the first decides the sandbox's network. */
  private entered = false;
  /** The folders `options.made` is still to be given, by the first command that enters it. */
  private moves: ReadonlyArray<readonly [string, string]> | undefined;
  /**
   * Settled once that command has started, or ended unstarted: the others wait for it, as nothing
   * may enter before its folders are moved. Settled for good after (a wait on it costs nothing).
   */
  private moving: Promise<void> | undefined;

  constructor(
    private readonly sandbox: Sandbox,
    private readonly layout: RunSandboxLayout,
    private readonly options: {
      /** How long it outlives its last command, asked as each ends; undefined: until `close`. */
      idleMs: number | (() => number | undefined);
      onProblem?: (problem: string) => void;
      /** A sandbox made ahead (a pool's), its folders renamed on the host: entered first. */
      made?: RunSandbox;
      /**
       * Where `made` shows the run's folders, each `from` (its own place) at `to` (the layout's):
       * moved by its first command's request (`ExecRequest.movesFirst`), not one of their own.
       */
      movesFirst?: ReadonlyArray<readonly [string, string]>;
    },
  ) {
    if (options.made) this.made = Promise.resolve(options.made);
    this.moves = options.made && options.movesFirst;
  }

  async run(
    request: ExecRequest & { cwd: string },
    launcher: ProcessLauncher,
  ): Promise<ExecResult | undefined> {
    if (this.failed || this.closed || !launcher.entersSandboxes) return undefined;
    clearTimeout(this.idle);
    this.running += 1;
    try {
      const exposure = { ...request.exposure, cwd: request.cwd, home: request.env.HOME };
      // The sandbox takes the network of the run's first command (a run has one owner). A pooled
      // sandbox has the host's: a run of a tenant's, whose network is its own, makes its own.
      if (!this.entered) {
        this.entered = true;
        if (exposure.network?.id !== this.network?.id) {
          const pooled = this.made;
          this.made = undefined;
          void pooled?.then((box) => box?.close());
        }
        this.network = exposure.network;
      }
      const realOf = (path: string) => this.sandbox.realPath(path);
      this.shown ??= shownFolders(this.layout, realOf);
      if (!covers(this.layoutNow(), exposure, this.shown, realOf)) return undefined;
      if (this.moves) return await this.firstIn(this.moves, request, launcher);
      await this.moving;
      const box = await this.box(launcher);
      return box && (await launcher.run(box.enter(request, request.cwd)));
    } finally {
      this.running -= 1;
      const { idleMs } = this.options;
      const idle = typeof idleMs === "number" ? idleMs : idleMs();
      if (this.running === 0 && !this.closed && idle !== undefined) {
        this.idle = setTimeout(() => void this.end(), idle);
        this.idle.unref();
      }
    }
  }

  /**
   * The first command into a sandbox made ahead: its folders moved and the command started in one
   * request to its door. Should they not move, that sandbox is ended and the command (it never
   * started) runs in one made for the run; one that did not start for a reason of its own ends it
   * too, and fails. Commands meanwhile wait until it has started.
   */
  private async firstIn(
    moves: ReadonlyArray<readonly [string, string]>,
    request: ExecRequest & { cwd: string },
    launcher: ProcessLauncher,
  ): Promise<ExecResult | undefined> {
    this.moves = undefined;
    let moved = (): void => undefined;
    this.moving = new Promise<void>((resolve) => {
      moved = resolve;
    });
    try {
      const box = await this.box(launcher);
      if (box === undefined || box !== this.options.made) {
        // The run's first command took a sandbox of its own (another network), or none.
        moved();
        return box && (await launcher.run(box.enter(request, request.cwd)));
      }
      let started = false;
      const onStarted = (pid: number): void => {
        started = true;
        moved();
        request.onStarted?.(pid);
      };
      const result = await launcher.run({ ...box.enter(request, request.cwd), movesFirst: moves, onStarted });
      if (started) return result;
      // Not started: its request may never have reached the door (refused before it was sent, a
      // NUL in its env, canceled), and a command entering after it would find the pool's folders.
      if (this.made !== undefined && (await this.made) === box) this.made = undefined;
      void box.close();
      if (!result.sandboxRefused) return result;
      this.options.onProblem?.(`a pooled sandbox could not take its run's folder: ${result.spawnError}`);
      const made = await this.box(launcher);
      moved();
      return made && (await launcher.run(made.enter(request, request.cwd)));
    } finally {
      moved();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.end();
  }

  private layoutNow(): RunSandboxLayout {
    return this.network ? { ...this.layout, network: this.network } : this.layout;
  }

  private async box(launcher: ProcessLauncher): Promise<RunSandbox | undefined> {
    const previous = await this.made;
    // Closed meanwhile (the run's end, the runner's stop): none is made that no close would end.
    if (this.closed) return undefined;
    if (previous?.alive() === false) {
      void previous.close();
      this.made = undefined;
    }
    this.made ??= RunSandbox.make(launcher, this.sandbox, this.layoutNow()).then(async (box) => {
      if (box instanceof RunSandbox && this.closed) {
        await box.close();
        return undefined;
      }
      if (box instanceof RunSandbox) return box;
      this.failed = true;
      this.options.onProblem?.(box.problem);
      return undefined;
    });
    return this.made;
  }

  private async end(): Promise<void> {
    clearTimeout(this.idle);
    const made = this.made;
    this.made = undefined;
    await (await made)?.close();
  }
}

/** A clone's failures that pass: the machine short of memory, processes, descriptors or room. */
const passing = /\b(ENOMEM|EAGAIN|EWOULDBLOCK|EMFILE|ENFILE|ENOSPC|EINTR|EBUSY)\b/;
