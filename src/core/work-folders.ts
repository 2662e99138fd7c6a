import { realpathSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, isAbsolute, join, normalize, resolve, sep } from "node:path";
import type { Confinement } from "./confinement.js";
import { RunyardError } from "./errors.js";

/**
 * Where a run may work: the one answer to "may this run, submitted by whom, name this folder as
 * its `cwd`". The server asks at submit (the path as written, `workFolderRefusal`), so a bad
 * `cwd` is a 4xx and never a failed run; the runner asks again before it starts anything (the
 * real path, every link resolved, `allowedWorkFolder`), and its sandbox binds what was allowed.
 *
 * - A platform admin's steps and agent turns may work in any folder but runyard's own (the
 *   runner's home, the server's home, the agents' workspace folder), `/`, the folders a sandbox
 *   makes its own (/proc, /sys, /dev, /run) and the host's temp folder itself.
 * - Anyone else's (a tenant's members and admins, users of no tenant) only under the operator's
 *   roots: `step_cwd_roots:` for workflow steps, `agent_cwd_roots:` for agent tasks; runyard's own
 *   folders stay out though a root holds them.
 */

/** What the folder is for: a workflow step's `cwd`, or an agent task's. */
export type WorkKind = "step" | "agent";

/** What one side (server or runner) knows of the folders a run may work in. */
export interface WorkFolderRules {
  kind: WorkKind;
  /**
   * Where a confined run may work, absolute: the operator's `step_cwd_roots` / `agent_cwd_roots`,
   * and on a runner the folders it adds (its working folder for steps, its workspace folder for
   * agent tasks).
   */
  roots: readonly string[];
  /**
   * runyard's own folders, never a run's cwd whoever submitted it: the runner's home, the server's
   * home, the agents' workspace folder (other conversations' chat folders, worktrees, kept branches).
   */
  own: readonly string[];
  /** Who asks, for messages: the server at submit (the default), or a runner before it starts anything. */
  side?: "server" | "runner";
}

/** The setting an operator adds a folder to, by kind: named in every refusal. */
export const rootsSetting: Record<WorkKind, string> = {
  step: "step_cwd_roots (RUNYARD_STEP_CWD_ROOTS)",
  agent: "agent_cwd_roots (RUNYARD_AGENT_CWD_ROOTS)",
};

/** The folders a confined run may work in, as a refusal names them, by side and kind. */
const rootsName: Record<"server" | "runner", Record<WorkKind, string>> = {
  server: { step: "the server's step_cwd_roots", agent: "the server's agent_cwd_roots" },
  runner: {
    step: "this runner's step_cwd_roots",
    agent: "this runner's allowed folders (its workspace folder and agent_cwd_roots)",
  },
};

/**
 * Folders a sandbox makes its own (/proc, /dev, /run) or keeps out (/sys): a cwd inside one would
 * bind the host's over the sandbox's, and with it every host process's command line, the host's
 * devices and its unix sockets (/run/docker.sock).
 */
export const runtimeFolders: readonly string[] = ["/proc", "/sys", "/dev", "/run"];

/**
 * The host's temp folders, whose own listing a sandbox replaces with an empty /tmp: as a cwd they
 * would show every other command's scratch folder and socket there. Folders inside them are fine.
 */
export function hostTempFolders(): string[] {
  let temp = normalize(tmpdir());
  try {
    temp = realpathSync(temp);
  } catch {
    // A temp folder that does not exist shows nothing.
  }
  return [...new Set(["/tmp", temp])];
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

/**
 * Why no run may work in `cwd` (absolute, normalized), whoever submitted it: `/` would show the
 * whole machine, a runtime folder the host's processes, devices or sockets, the host's temp
 * folder every other command's scratch files. Undefined when some run may.
 */
export function machineFolderProblem(cwd: string): string | undefined {
  if (cwd === sep) return "a run cannot work in / (it would see the whole machine)";
  const runtime =
    runtimeFolders.find((folder) => isUnder(cwd, folder)) ??
    hostTempFolders().find((folder) => cwd === folder);
  if (runtime === undefined) return undefined;
  return `cwd "${cwd}" is ${cwd === runtime ? "" : "inside "}${runtime}, which a sandbox replaces with its own (the host's would show its processes, devices or sockets): name a folder of the run's own as cwd`;
}

/**
 * The refusal of `cwd` as written, or undefined when the run may work there: what the server
 * decides at submit. A member's cwd must be absolute: a relative one would be read from the
 * runner's own working folder. A platform admin's relative cwd is judged by the runner, which
 * alone knows where it leads.
 */
export function workFolderRefusal(
  cwd: string,
  confinement: Confinement,
  rules: WorkFolderRules,
): RunyardError | undefined {
  const shown = JSON.stringify(cwd);
  if (!isAbsolute(cwd)) {
    // Where it leads is known on the runner only, which judges its real path.
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
 * The folder the run works in, as the runner checks it before it starts anything: `cwd` judged as
 * written (`workFolderRefusal`), then its real path (every symbolic link resolved, for the part
 * that exists) against the real paths of runyard's own folders and, when confined, of the roots.
 * The real path is what the run gets, so a link swapped after the check does not move it.
 * Throws STEP_CWD_NOT_ALLOWED / AGENT_CWD_NOT_ALLOWED; creates nothing.
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
 * The refusal of `real`, a folder's real path (every link resolved: `allowedWorkFolder`'s, or the
 * path of a folder the runner holds open as it binds it, so that a link swapped after the first
 * check leads nowhere else), or undefined when the run may work there. `cwd`: as the run named it.
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

/** The code a refused folder carries, by kind: the same at submit and on the runner. */
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
