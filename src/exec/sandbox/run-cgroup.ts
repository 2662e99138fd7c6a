import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import { mkdir, rmdir } from "node:fs/promises";
import { join } from "node:path";

/**
 * Where this machine counts processes per group: the cgroup v2 hierarchy where its `pids`
 * controller can be given to children (`cgroup.subtree_control` of the root lists it), else
 * cgroup v1's `pids` hierarchy. `folder` is where the runner makes its groups.
 */
export interface PidsHierarchy {
  folder: string;
  v2: boolean;
}

const V2_ROOT = "/sys/fs/cgroup";
const V1_PIDS = "/sys/fs/cgroup/pids";

/**
 * The hierarchy a runner can make process groups in (it must be allowed to make folders there:
 * root, or a delegated hierarchy), or why there is none. With `owner`, a folder of that runner's
 * own inside it, so that its next life knows which groups a crash left behind (`clearLeftovers`).
 */
export function findPidsHierarchy(owner?: string): PidsHierarchy | { problem: string } {
  const v2 = readText(join(V2_ROOT, "cgroup.subtree_control"));
  const candidates: PidsHierarchy[] = [
    ...(v2?.split(/\s+/).includes("pids") ? [{ folder: join(V2_ROOT, "runyard"), v2: true }] : []),
    ...(existsSync(join(V1_PIDS, "cgroup.procs")) ? [{ folder: join(V1_PIDS, "runyard"), v2: false }] : []),
  ];
  const problems: string[] = [];
  for (const hierarchy of candidates) {
    try {
      mkdirSync(hierarchy.folder, { recursive: true });
      if (hierarchy.v2) writeFileSync(join(hierarchy.folder, "cgroup.subtree_control"), "+pids");
      if (owner === undefined) return hierarchy;
      const own = { ...hierarchy, folder: join(hierarchy.folder, owner) };
      mkdirSync(own.folder, { recursive: true });
      if (own.v2) writeFileSync(join(own.folder, "cgroup.subtree_control"), "+pids");
      return own;
    } catch (error) {
      problems.push(`${hierarchy.folder}: ${(error as Error).message}`);
    }
  }
  return {
    problem:
      candidates.length === 0
        ? "no cgroup hierarchy here has the pids controller (cgroup v2 with pids in the root's cgroup.subtree_control, or cgroup v1's pids)"
        : `cannot make a cgroup: ${problems.join("; ")}`,
  };
}

/**
 * The cgroup of one run's sandbox (or of a command's own sandbox: SandboxLauncher): its
 * processes, and every command entered into it (the fork-server joins the holder's cgroup before
 * it enters), are at most `pids.max`. A fork bomb
 * of a run's step is held there: further forks fail with EAGAIN, the runner and other runs go on.
 */
export class RunCgroup {
  private constructor(readonly folder: string) {}

  /**
   * Makes a group of its own under `hierarchy` holding at most `max` processes. The mkdir off the
   * event loop: the kernel takes a while over a cgroup's mkdir and rmdir (on cgroup v1, an RCU grace
   * period). Its limit on it: a write of a few bytes to a kernel file, where the open, write and
   * close each handed to libuv's pool cost more than the three calls.
   */
  static async make(hierarchy: PidsHierarchy, max: number): Promise<RunCgroup | { problem: string }> {
    const folder = join(hierarchy.folder, `sandbox-${randomBytes(8).toString("hex")}`);
    try {
      await mkdir(folder);
      writeFileSync(join(folder, "pids.max"), String(max));
      return new RunCgroup(folder);
    } catch (error) {
      await rmdir(folder).catch(() => undefined);
      return { problem: `cannot make the run's cgroup ${folder}: ${(error as Error).message}` };
    }
  }

  /** The file a process writes its pid to to move into the group. */
  get procsFile(): string {
    return join(this.folder, "cgroup.procs");
  }

  /** Moves `pids` into the group; what they fork from now on is counted there too. */
  add(pids: readonly number[]): string | undefined {
    try {
      for (const pid of pids) writeFileSync(this.procsFile, String(pid));
      return undefined;
    } catch (error) {
      return `cannot move the run's sandbox into its cgroup ${this.folder}: ${(error as Error).message}`;
    }
  }

  /**
   * Removes the group once its processes have ended. A command that raced the sandbox's close may
   * have joined it and failed to enter, and still wait to be reaped: busy, it is asked again for
   * about 2.5 s; past that, an empty group left behind holds nothing.
   */
  async remove(): Promise<void> {
    await removeGroup(this.folder);
  }
}

/**
 * Removes the groups a runner's earlier life left in its own folder (a kill -9 ends it before it
 * removes its runs' groups): those still holding processes are asked again, as `remove` does.
 * Answers how many went, and how many still hold processes.
 */
export async function clearLeftovers(hierarchy: PidsHierarchy): Promise<{ removed: number; busy: number }> {
  let names: string[];
  try {
    names = readdirSync(hierarchy.folder).filter((name) => name.startsWith("sandbox-"));
  } catch {
    return { removed: 0, busy: 0 };
  }
  const gone = await Promise.all(names.map((name) => removeGroup(join(hierarchy.folder, name))));
  const removed = gone.filter(Boolean).length;
  return { removed, busy: names.length - removed };
}

/** A runner's own folder goes at its clean stop, once its runs' groups have: nothing is left of it. */
export function removeOwnFolder(hierarchy: PidsHierarchy): void {
  try {
    rmdirSync(hierarchy.folder);
  } catch {
    // A group still busy keeps it; the runner's next life on the same state folder empties it.
  }
}

/** rmdir of a group, asked again for about 2.5 s while its last processes are being reaped. */
async function removeGroup(folder: string): Promise<boolean> {
  for (let wait = 10; ; wait *= 2) {
    try {
      await rmdir(folder);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return true;
      if (code !== "EBUSY" || wait > 1280) return false;
    }
    await new Promise((resolve) => setTimeout(resolve, wait));
  }
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}
