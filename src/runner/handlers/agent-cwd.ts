import { realpath } from "node:fs/promises";
import { basename, dirname, join, normalize } from "node:path";
import { agentCwdRefusal, isUnder, notAllowed } from "../../core/agent-cwd.js";

/**
 * The folder a confined agent task works in: its `cwd` checked as written against this runner's
 * allowed roots, then as the real path (every symbolic link resolved, for the part that exists)
 * against the roots' own real paths. The real path is what the agent gets, so a link swapped
 * after the check does not move it. Throws AGENT_CWD_NOT_ALLOWED; creates nothing.
 */
export async function confinedAgentCwd(
  cwd: string,
  roots: readonly string[],
  /**
   * The runner's own folders, never a task's cwd though a root holds them: the agents' workspace
   * folder (other conversations' chat folders, worktrees, kept branches, mirrors) and its home.
   */
  own: readonly string[] = [],
): Promise<string> {
  const where = "this runner's allowed folders";
  const written = agentCwdRefusal(cwd, roots, `${where} (its workspace folder and agent_cwd_roots)`);
  if (written) throw written;
  const real = await realPathOf(normalize(cwd));
  for (const folder of own) {
    const realFolder = await realPathOf(folder);
    if (isUnder(normalize(cwd), folder) || isUnder(real, realFolder)) {
      throw notAllowed(
        `cwd ${JSON.stringify(cwd)} is ${real === realFolder ? "" : "inside "}${folder}, the runner's own folder (other conversations' folders and branches are there)`,
      );
    }
  }
  const realRoots = await Promise.all(roots.map((root) => realPathOf(root)));
  if (realRoots.some((root) => isUnder(real, root))) return real;
  throw notAllowed(`cwd ${JSON.stringify(cwd)} leads through a symbolic link to ${real}, outside ${where}`);
}

/** The real path of `path`: its deepest existing part resolved, the rest (to be created) appended. */
async function realPathOf(path: string): Promise<string> {
  const missing: string[] = [];
  let existing = path;
  for (;;) {
    try {
      return join(await realpath(existing), ...missing);
    } catch (error) {
      const parent = dirname(existing);
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== "ENOENT" && code !== "ENOTDIR") || parent === existing) throw error;
      missing.unshift(basename(existing));
      existing = parent;
    }
  }
}
