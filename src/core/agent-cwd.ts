import { isAbsolute, normalize, sep } from "node:path";
import { RunyardError } from "./errors.js";

/**
 * Where an agent task that is confined may work (`cwd`): an absolute path without `..`, under one
 * of the allowed roots. This is the check on the path as written, which the server makes at
 * submit; a runner makes it again and then on the real path (runner/handlers/agent-cwd.ts).
 */

/** Why `root` cannot be an entry of `agent_cwd_roots`, or undefined when it can. */
export function agentCwdRootProblem(root: string): string | undefined {
  if (!isAbsolute(root)) return `${JSON.stringify(root)} is not an absolute path`;
  if (hasDotDot(root)) return `${JSON.stringify(root)} contains ..; write the folder's own path`;
  return undefined;
}

/** Whether `path` is `root` or lies under it; both absolute and normalized. */
export function isUnder(path: string, root: string): boolean {
  return path === root || path.startsWith(root.endsWith(sep) ? root : `${root}${sep}`);
}

/** The refusal of a confined task's `cwd` as written, or undefined when it is under a root. */
export function agentCwdRefusal(
  cwd: string,
  roots: readonly string[],
  where = "the server's agent_cwd_roots",
): RunyardError | undefined {
  const shown = JSON.stringify(cwd);
  if (!isAbsolute(cwd)) return notAllowed(`cwd ${shown} is a relative path`);
  if (hasDotDot(cwd)) return notAllowed(`cwd ${shown} contains ..`);
  const path = normalize(cwd);
  if (roots.some((root) => isUnder(path, root))) return undefined;
  return notAllowed(
    roots.length === 0
      ? `cwd ${shown} is not allowed: ${where} lists no folder`
      : `cwd ${shown} is under none of ${where} (${roots.join(", ")})`,
  );
}

export function notAllowed(message: string): RunyardError {
  return new RunyardError("AGENT_CWD_NOT_ALLOWED", message);
}

function hasDotDot(path: string): boolean {
  return path.split(/[\\/]+/).includes("..");
}
