import { existsSync, readFileSync, statSync } from "node:fs";
import { nativeHelperPath } from "../native-helpers.js";
import type { ExecRequest, ExecResult, ProcessLauncher } from "../types.js";

/** The namespaces a run's sandbox is entered by, in the order of the fork-server's 'E' (native/fork-server.c). */
export const SANDBOX_NAMESPACES = ["user", "mnt", "ipc", "net", "uts", "pid"] as const;

/**
 * The process a run's sandbox is built around: lives as long as it, ignores SIGTERM (so the
 * fork-server's stop of every group gives the commands their grace first), says when it is ready;
 * bwrap's pid 1 reaps leftovers. The static native/sandbox-holder in /run where built; else sh and
 * sleep (two execs of dynamic programs: a third of what bwrap costs to make the sandbox).
 */
export function holderCommand(): { argv: string[]; files: [string, string][] } {
  const built = nativeHelperPath("sandbox-holder");
  if (existsSync(built)) return { argv: [HOLDER_INSIDE], files: [[built, HOLDER_INSIDE]] };
  return {
    argv: [
      "/bin/sh",
      "-c",
      'trap "" TERM; echo runyard-sandbox-ready >&2; exec sleep infinity >/dev/null 2>&1',
    ],
    files: [],
  };
}

const HOLDER_INSIDE = "/run/runyard-sandbox-holder";

/** A sandbox's holder, started and ready: `init` its pid 1 (the holder itself in a clone). */
export interface StartedHolder {
  init: number;
  holder: number;
  stop: AbortController;
  ended: Promise<ExecResult>;
}

/**
 * Starts a sandbox's holder (`request` adds what makes the sandbox: bwrap's argv, or a clone)
 * and waits until it says it is ready; a failed one leaves nothing running. `maker` names it in
 * the problem.
 */
export async function startHolder(
  launcher: ProcessLauncher,
  maker: string,
  request: (base: ExecRequest) => ExecRequest,
): Promise<StartedHolder | { problem: string }> {
  const stop = new AbortController();
  let output = "";
  let started: number | undefined;
  let announce: (pids: { init: number; holder: number } | undefined) => void = () => {};
  const announced = new Promise<{ init: number; holder: number } | undefined>((resolve) => {
    announce = resolve;
  });
  const ended = launcher.run(
    request({
      argv: [],
      env: { PATH: "/usr/bin:/bin", LANG: "C" },
      killGraceMs: 0,
      signal: stop.signal,
      onStarted: (pid) => {
        started = pid;
      },
      onOutput: (_stream, data) => {
        // Read only until ready, before any command of the run: what comes after is not trusted.
        if (output.length > 65_536) return;
        output += data;
        if (!output.includes("runyard-sandbox-ready")) return;
        // bwrap says its pid 1 (--info-fd); a clone's holder is its pid 1, the process started.
        const info = /"child-pid":\s*(\d+)/.exec(output);
        const init = info ? Number(info[1]) : started;
        announce(init === undefined ? undefined : { init, holder: info ? holderOf(init) : init });
        output = "x".repeat(65_537);
      },
    }),
  );
  const pids = await Promise.race([announced, ended.then(() => undefined)]);
  if (pids === undefined) {
    stop.abort();
    const result = await ended;
    const why = result.spawnError ?? (output.length > 65_536 ? "" : output.trim());
    return { problem: `${maker} could not make the run's sandbox${why ? `: ${why}` : ""}` };
  }
  return { ...pids, stop, ended };
}

/** The holder's host pid: the one child of bwrap's pid 1 (`init`, in the same namespaces: the fallback). */
export function holderOf(init: number): number {
  try {
    const children = readFileSync(`/proc/${init}/task/${init}/children`, "utf8").trim().split(/\s+/);
    const holder = Number(children[0]);
    return Number.isInteger(holder) && holder > 0 ? holder : init;
  } catch {
    return init;
  }
}

/** The inodes of `pid`'s namespaces (SANDBOX_NAMESPACES), or undefined once it is gone. */
export function namespacesOf(pid: number): bigint[] | undefined {
  try {
    return SANDBOX_NAMESPACES.map((kind) => statSync(`/proc/${pid}/ns/${kind}`, { bigint: true }).ino);
  } catch {
    return undefined;
  }
}

const mountIndex = SANDBOX_NAMESPACES.indexOf("mnt");

/**
 * Whether `holder` still lives with the mount namespace it was made with. That one inode tells it
 * from any process its pid could be given to next, as well as all six would: the host's and every
 * other sandbox's have other mounts, and a process of its own sandbox shares all six. The
 * fork-server checks all six wherever it enters (sandbox-entry.c); this only decides whether the
 * runner makes the sandbox again, once a command is asked for, so it costs one stat, not six.
 */
export function holderLives(holder: { pid: number; namespaces: readonly bigint[] }): boolean {
  try {
    return statSync(`/proc/${holder.pid}/ns/mnt`, { bigint: true }).ino === holder.namespaces[mountIndex];
  } catch {
    return false;
  }
}
