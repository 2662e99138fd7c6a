import { readFileSync } from "node:fs";
import { resolve, sep } from "node:path";
import { realPath, type Sandbox, type SandboxExposure } from "./sandbox.js";
import type { ExecRequest, ExecResult, ProcessLauncher } from "./types.js";

/** The folders a run's sandbox is made with: what every command of the run may see and change. */
export interface RunSandboxLayout {
  /** The run's own folder: the cwd of its commands that name none. */
  folder: string;
  /** Folders the run names as cwds, shown read-write: each is judged as a cwd (Sandbox.refusal). */
  cwds?: string[];
  /** The runner's folders for the run's scratch files (`$RUNYARD_OUTPUT`, scripts), shown read-write. */
  scratch: string[];
  /** Shown read-only. */
  readable?: string[];
  /** The run's /tmp (see the runner's RunTmpFolders). */
  tmp: string;
  /** `$HOME` of the run's commands: one empty tmpfs for the run, shared by its steps. */
  home?: string | undefined;
  /** The run's folder and the cwds it names were made by the runner (see ExecExposure.runnerMadeCwd). */
  runnerMadeCwd?: boolean;
}

/**
 * The process a run's sandbox is built around: it lives as long as the sandbox, ignores SIGTERM
 * (the fork-server's stop of every group gives the run's commands their grace first) and says
 * when the sandbox is ready. bwrap's own pid 1 reaps whatever the commands leave behind.
 */
const HOLDER = [
  "/bin/sh",
  "-c",
  'trap "" TERM; echo runyard-sandbox-ready >&2; exec sleep infinity >/dev/null 2>&1',
];

/**
 * One sandbox for one run on this runner, made once by bubblewrap and entered by each command
 * of the run (the fork-server joins its namespaces, native/fork-server.c 'E'), as a job
 * container is entered by each step with `docker exec`: a command costs a fork, not a sandbox.
 * The commands of a run share its /tmp, `$HOME` and folders; no other run's command sees them.
 *
 * A command whose folders the sandbox was not made with (a cwd known only when it runs) is not
 * `covers`ed: its launcher gives it a sandbox of its own, as before.
 */
export class RunSandbox {
  private constructor(
    /** The host pid whose namespaces are the sandbox's. */
    readonly holder: number,
    private readonly shown: readonly string[],
    private readonly layout: RunSandboxLayout,
    private readonly stop: AbortController,
    private readonly ended: Promise<ExecResult>,
  ) {}

  /**
   * Makes the sandbox through `launcher` (which must enter sandboxes: the fork-server), or says
   * why it cannot; nothing of a sandbox that failed is left running.
   */
  static async make(
    launcher: ProcessLauncher,
    sandbox: Sandbox,
    layout: RunSandboxLayout,
  ): Promise<RunSandbox | { problem: string }> {
    if (!launcher.entersSandboxes) return { problem: "the fork-server is not running" };
    const exposure: SandboxExposure = {
      cwd: layout.folder,
      writable: [...(layout.cwds ?? []), ...layout.scratch],
      readable: layout.readable ?? [],
      tmp: layout.tmp,
      home: layout.home,
      ...(layout.runnerMadeCwd ? { runnerMadeCwd: true } : {}),
    };
    for (const folder of [layout.folder, ...(layout.cwds ?? [])]) {
      const refusal = sandbox.refusal({ ...exposure, cwd: folder });
      if (refusal) return { problem: refusal };
    }
    const [bwrap, ...rest] = sandbox.command(HOLDER, exposure);
    const stop = new AbortController();
    let output = "";
    let announce: (holder: number | undefined) => void = () => {};
    const announced = new Promise<number | undefined>((resolve) => {
      announce = resolve;
    });
    const ended = launcher.run({
      // --info-fd: bwrap says on stdout, and then closes it, which host pid is the sandbox's pid 1.
      argv: [bwrap!, "--info-fd", "1", ...rest],
      env: { PATH: "/usr/bin:/bin", LANG: "C" },
      killGraceMs: 0,
      signal: stop.signal,
      onOutput: (_stream, data) => {
        // Read only until the sandbox is ready: no command of the run has started before that,
        // and what comes afterwards on this pipe is not trusted.
        if (output.length > 65_536) return;
        output += data;
        if (!output.includes("runyard-sandbox-ready")) return;
        const init = /"child-pid":\s*(\d+)/.exec(output);
        announce(init ? holderOf(Number(init[1])) : undefined);
        output = "x".repeat(65_537);
      },
    });
    const holder = await Promise.race([announced, ended.then(() => undefined)]);
    if (holder === undefined) {
      stop.abort();
      const result = await ended;
      const why = result.spawnError ?? (output.length > 65_536 ? "" : output.trim());
      return { problem: `bubblewrap could not make the run's sandbox${why ? `: ${why}` : ""}` };
    }
    const shown = [layout.folder, ...(layout.cwds ?? []), ...layout.scratch].map((folder) =>
      realPath(folder),
    );
    return new RunSandbox(holder, shown, layout, stop, ended);
  }

  /**
   * Whether a command with this cwd and exposure can run in this sandbox: its cwd and every
   * folder it needs were shown when the sandbox was made, and it asks for the run's /tmp.
   */
  covers(cwd: string, exposure: SandboxExposure): boolean {
    const real = realPath(cwd);
    if (!this.shown.some((folder) => isWithin(real, folder))) return false;
    if (exposure.tmp !== undefined && resolve(exposure.tmp) !== resolve(this.layout.tmp)) return false;
    if (
      exposure.home !== undefined &&
      this.layout.home !== undefined &&
      resolve(exposure.home) !== resolve(this.layout.home)
    )
      return false;
    const needed = [...(exposure.writable ?? []), ...(exposure.readable ?? [])].map((folder) =>
      realPath(folder),
    );
    const readable = (this.layout.readable ?? []).map((folder) => realPath(folder));
    return needed.every((folder) => [...this.shown, ...readable].some((shown) => isWithin(folder, shown)));
  }

  /** `request` as a command of this sandbox. */
  enter(request: ExecRequest, cwd: string): ExecRequest {
    return { ...request, cwd, enter: this.holder };
  }

  /** Ends the sandbox and everything in it; resolves once it is gone. */
  async close(): Promise<void> {
    this.stop.abort();
    await this.ended;
  }
}

/**
 * The holder's host pid: bwrap's pid 1 (`init`) has one child, the holder, in the namespaces
 * the commands must join. bwrap's own pid 1 is in them too; it is the fallback.
 */
function holderOf(init: number): number {
  try {
    const children = readFileSync(`/proc/${init}/task/${init}/children`, "utf8").trim().split(/\s+/);
    const holder = Number(children[0]);
    return Number.isInteger(holder) && holder > 0 ? holder : init;
  } catch {
    return init;
  }
}

function isWithin(path: string, folder: string): boolean {
  return path === folder || folder === "/" || path.startsWith(`${folder}${sep}`);
}
