import { realpathSync } from "node:fs";
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import type { Confinement } from "./confinement.js";
import { RunyardError } from "./errors.js";

/**
 * May this run, submitted by whom, name this folder as its `cwd`? The server asks at submit (the
 * path as written), so a bad `cwd` is a 4xx, not a failed run; the runner asks again on the real
 * path (links resolved) before it starts anything, and its sandbox binds what was allowed.
 *
 * - A platform admin may work anywhere but runyard's own folders (homes, the agents' workspace), `/`,
 *   the sandbox's runtime folders (/proc, /sys, /dev, /run) and the host's temp folder itself.
 * - Anyone else only under `step_cwd_roots:` / `agent_cwd_roots:`, runyard's own folders still out.
 */

export type WorkKind = "step" | "agent";

/** What one side (server or runner) knows of the folders a run may work in. */
export interface WorkFolderRules {
  kind: WorkKind;
  /** Where a confined run may work: the operator's roots, and on a runner its working or workspace folder. */
  roots: readonly string[];
  /** runyard's own folders, never any run's cwd: the homes, the agents' workspace (others' worktrees). */
  own: readonly string[];
  /** Who asks, for messages; default: the server. */
  side?: "server" | "runner";
}

/** The setting an operator adds a folder to, by kind: named in every refusal. */
export const rootsSetting: Record<WorkKind, string> = {
  step: "step_cwd_roots (RUNYARD_STEP_CWD_ROOTS)",
  agent: "agent_cwd_roots (RUNYARD_AGENT_CWD_ROOTS)",
};

const rootsName: Record<"server" | "runner", Record<WorkKind, string>> = {
  server: { step: "the server's step_cwd_roots", agent: "the server's agent_cwd_roots" },
  runner: {
    step: "this runner's step_cwd_roots",
    agent: "this runner's allowed folders (its workspace folder and agent_cwd_roots)",
  },
};

/**
 * Folders a sandbox makes its own or keeps out: a cwd inside one would bind the host's over them,
 * showing every host process's command line, its devices and unix sockets (/run/docker.sock).
 */
export const runtimeFolders: readonly string[] = ["/proc", "/sys", "/dev", "/run"];

/** The host's temp folders: as a cwd they would show every other command's scratch files; inside is fine. */
export function hostTempFolders(): string[] {
  const given = normalize(tempFolderSetting());
  // Asked before every step's start: the folder's real path is looked up again only when TMPDIR changed.
  if (lastTemp?.given === given) return lastTemp.folders;
  let temp = given;
  try {
    temp = realpathSync(temp);
  } catch {
    // A temp folder that does not exist shows nothing: not kept, it may be made.
    return [...new Set(["/tmp", temp])];
  }
  lastTemp = { given, folders: [...new Set(["/tmp", temp])] };
  return lastTemp.folders;
}

let lastTemp: { given: string; folders: string[] } | undefined;

/**
 * What `os.tmpdir()` answers, read from `process.env`: Node 20 reads each of the three variables
 * through a check of the process's ids and capabilities (15 system calls a call), and this is
 * asked before every step's start. The same answer for a process that is not setuid, as runyard
 * never is (`test`: against `tmpdir()` under each variable).
 */
export function tempFolderSetting(env: NodeJS.ProcessEnv = process.env): string {
  const path = env.TMPDIR || env.TMP || env.TEMP || "/tmp";
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

/** Why `root` cannot be an entry of `step_cwd_roots` / `agent_cwd_roots`, or undefined when it can. */
export function cwdRootProblem(root: string): string | undefined {
  if (!isAbsolute(root)) return `${JSON.stringify(root)} is not an absolute path`;
  if (hasDotDot(root)) return `${JSON.stringify(root)} contains ..; write the folder's own path`;
  return undefined;
}

/** Whether `path` is `root` or lies under it; both absolute and normalized. */
export function isUnder(path: string, root: string): boolean {
  return path === root || root === sep || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/** Why no run may work in `cwd` (absolute, normalized), whoever submitted it; undefined when some may. */
export function machineFolderProblem(cwd: string): string | undefined {
  if (cwd === sep) return "a run cannot work in / (it would see the whole machine)";
  const runtime =
    runtimeFolders.find((folder) => isUnder(cwd, folder)) ??
    hostTempFolders().find((folder) => cwd === folder);
  if (runtime === undefined) return undefined;
  return `cwd "${cwd}" is ${cwd === runtime ? "" : "inside "}${runtime}, which a sandbox replaces with its own (the host's would show its processes, devices or sockets): name a folder of the run's own as cwd`;
}

/**
 * The refusal of `cwd` as written (the server's, at submit), or undefined. A member's cwd must be
 * absolute, else it is read from the runner's working folder; an admin's relative one the runner judges.
 */
export function workFolderRefusal(
  cwd: string,
  confinement: Confinement,
  rules: WorkFolderRules,
): RunyardError | undefined {
  const shown = JSON.stringify(cwd);
  if (!isAbsolute(cwd)) {
    if (confinement === "unconfined") return undefined;
    return refused(
      rules.kind,
      `cwd ${shown} is a relative path${hasDotDot(cwd) ? " that climbs with .." : ""}`,
    );
  }
  if (confinement === "confined" && hasDotDot(cwd)) return refused(rules.kind, `cwd ${shown} contains ..`);
  const path = normalize(cwd).replace(/(?<=.)\/+$/, "");
  const machine = machineFolderProblem(path);
  if (machine) return refused(rules.kind, machine);
  const own = rules.own.find((folder) => isUnder(path, normalize(folder)));
  if (own !== undefined) return ownFolder(rules.kind, cwd, own, path === normalize(own));
  if (confinement === "unconfined") return undefined;
  if (rules.roots.some((root) => isUnder(path, root))) return undefined;
  return outsideRoots(rules, shown);
}

/**
 * The runner's check: `cwd` as written, then its real path against the real paths of runyard's own
 * folders and the roots. The run gets the real path, so a link swapped after the check does not move
 * it. Throws STEP_CWD_NOT_ALLOWED / AGENT_CWD_NOT_ALLOWED; creates nothing.
 */
export async function allowedWorkFolder(
  cwd: string,
  confinement: Confinement,
  rules: WorkFolderRules,
): Promise<string> {
  const written = workFolderRefusal(cwd, confinement, rules);
  if (written) throw written;
  const real = realPathOf(resolve(cwd));
  const refusal = realFolderRefusal(real, confinement, rules, cwd);
  if (refusal) throw refusal;
  return real;
}

/**
 * The refusal of a real path (also of a folder the runner holds open as it binds it, so a link swapped
 * after the first check leads nowhere else), or undefined. `cwd`: as the run named it.
 */
export function realFolderRefusal(
  real: string,
  confinement: Confinement,
  rules: WorkFolderRules,
  cwd = real,
): RunyardError | undefined {
  const led =
    real === cwd
      ? `cwd ${JSON.stringify(cwd)}`
      : `cwd ${JSON.stringify(cwd)} leads through a symbolic link to ${real}`;
  const machine = machineFolderProblem(real);
  if (machine) return refused(rules.kind, real === cwd ? machine : `${led}: ${machine}`);
  for (const folder of rules.own) {
    const realFolder = realPathOf(folder);
    if (isUnder(real, realFolder)) return ownFolder(rules.kind, cwd, folder, real === realFolder);
  }
  if (confinement === "unconfined") return undefined;
  if (rules.roots.some((root) => isUnder(real, realPathOf(root)))) return undefined;
  return refused(
    rules.kind,
    `${led}, outside ${rootsName[rules.side ?? "server"][rules.kind]}; the operator can list the folder in ${rootsSetting[rules.kind]}`,
  );
}

export function cwdNotAllowedCode(kind: WorkKind): "STEP_CWD_NOT_ALLOWED" | "AGENT_CWD_NOT_ALLOWED" {
  return kind === "step" ? "STEP_CWD_NOT_ALLOWED" : "AGENT_CWD_NOT_ALLOWED";
}

function refused(kind: WorkKind, message: string): RunyardError {
  return new RunyardError(cwdNotAllowedCode(kind), message);
}

function ownFolder(kind: WorkKind, cwd: string, folder: string, exactly: boolean): RunyardError {
  return refused(
    kind,
    `cwd ${JSON.stringify(cwd)} is ${exactly ? "" : "inside "}${folder}, one of runyard's own folders (a home of the runner or server, or the agents' workspace): no run works there, a platform admin's neither`,
  );
}

function outsideRoots(rules: WorkFolderRules, shown: string): RunyardError {
  const where = rootsName[rules.side ?? "server"][rules.kind];
  const listed =
    rules.roots.length === 0
      ? `cwd ${shown} is not allowed: ${where} lists no folder`
      : `cwd ${shown} is under none of ${where} (${rules.roots.join(", ")})`;
  return refused(
    rules.kind,
    `${listed}; the operator can list the folder in ${rootsSetting[rules.kind]}, or a platform admin can submit the run`,
  );
}

/** The real path of `path`: its deepest existing part resolved, the rest (to be created) appended. */
export function realPathOf(path: string): string {
  const missing: string[] = [];
  let existing = path;
  for (;;) {
    try {
      return join(realpathSync(existing), ...missing);
    } catch (error) {
      const parent = dirname(existing);
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || parent === existing) throw error;
      missing.unshift(basename(existing));
      existing = parent;
    }
  }
}

function hasDotDot(path: string): boolean {
  return path.split(/[\\/]+/).includes("..");
}
