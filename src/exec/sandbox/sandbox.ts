import { execFile, execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
import { machineFolderProblem } from "../../core/work-folders.js";
import type { ExecExposure } from "../types.js";
import type { PidsHierarchy } from "./run-cgroup.js";

/** How a runner keeps a run's processes from the others and from itself (see RunnerInfo.isolation). */
export type SandboxProbe =
  | { isolation: "sandbox"; bwrap: string }
  | { isolation: "none"; problem: string; hint: string };

/**
 * Whether bubblewrap can give a process a private user, mount and pid namespace on this
 * machine: it must be installed and user namespaces (or its setuid bit) must work. Asked once
 * per runner start, by running bwrap itself, since a binary that is present may still be
 * refused by the kernel.
 */
export async function probeSandbox(bwrap = "bwrap", tries = 3): Promise<SandboxProbe> {
  // A bwrap that is there but failed is asked again: a machine short of processes or namespaces
  // for a moment must not start a runner that drops its sandbox for good.
  let probe = await probeOnce(bwrap);
  for (
    let left = tries - 1;
    left > 0 && probe.isolation === "none" && !("missing" in probe && probe.missing);
    left--
  ) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    probe = await probeOnce(bwrap);
  }
  if (probe.isolation === "sandbox") return probe;
  return { isolation: "none", problem: probe.problem, hint: probe.hint };
}

function probeOnce(
  bwrap: string,
): Promise<SandboxProbe | { isolation: "none"; problem: string; hint: string; missing: boolean }> {
  const args = [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-ipc",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "true",
  ];
  return new Promise((resolve) => {
    execFile(bwrap, args, { timeout: 10_000 }, (error, _stdout, stderr) => {
      if (!error) {
        resolve({ isolation: "sandbox", bwrap });
        return;
      }
      const missing = (error as NodeJS.ErrnoException).code === "ENOENT";
      resolve({
        isolation: "none",
        missing,
        problem: missing
          ? "bubblewrap (bwrap) is not installed"
          : `bubblewrap cannot make a sandbox here: ${String(stderr).trim() || error.message}`,
        hint: missing
          ? "install it (Debian/Ubuntu: apt-get install bubblewrap) and start the runner again"
          : "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1) or run the runner where bwrap works",
      });
    });
  });
}

/** What a sandbox is built from: the bwrap a probe found, and what no sandboxed process may see. */
export interface SandboxOptions {
  /** The bwrap binary (`SandboxProbe.bwrap`). */
  bwrap: string;
  /**
   * Folders hidden even where they lie inside a folder a process sees (the runner's home, the
   * server's home, the workspace root): an empty tmpfs takes their place.
   */
  hide: string[];
  /**
   * Folders inside hidden ones where the runner makes a folder per piece of work (agents'
   * worktrees): hidden themselves, but a runner-made cwd strictly inside one is shown, its
   * siblings staying hidden.
   */
  workRoots?: string[];
  /**
   * At most `max` processes in each run's sandbox (its cgroup's `pids.max`, run-cgroup.ts), its
   * commands and all they start; absent: no limit of the runner's.
   */
  pids?: { hierarchy: PidsHierarchy; max: number };
  /** The uid and gid a sandboxed process sees; 65534 (nobody) for a runner that runs as root. */
  uid?: number;
  gid?: number;
}

/** What one command sees besides the system: its cwd and scratch folders read-write, and `readable`. */
export interface SandboxExposure extends ExecExposure {
  cwd: string;
  /** `$HOME` of the command: an empty private tmpfs there, so tools that write under it work. */
  home?: string | undefined;
}

/**
 * The folders of the system every sandboxed process sees read-only. An allowlist rather than
 * `/` with holes: whatever a runner's machine keeps elsewhere (/root, /home, /var, /srv, /work,
 * other checkouts) stays out without anyone having to list it.
 */
const SYSTEM_FOLDERS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];

/**
 * Files of /etc that hold the machine's own secrets: readable by a runner that runs as root,
 * so a sandboxed process sees /dev/null in their place. Only those the runner's own user can
 * read are covered (each cover is a bind mount, about 0.3 ms of every step): a sandboxed
 * process has that user's identity on the host and fewer rights, so what the runner cannot
 * read it cannot either.
 */
const MACHINE_SECRETS = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers"];

/**
 * Builds the bubblewrap command line that runs one command in a sandbox: a private user
 * namespace (no capabilities, a uid that is not root), a pid namespace with its own /proc (no
 * other process, nor its environment, is visible), a private IPC namespace, a minimal /dev,
 * a private /tmp (the run's own, shared by its steps, or an empty one) and an empty /run (no unix socket of the host, such as /var/run/docker.sock, is
 * reachable), the system folders read-only, and the command's cwd and scratch folders
 * read-write. The network namespace stays the host's: steps fetch, push and call services.
 *
 * The command stays in the process group its launcher made (no `--new-session`): the runner
 * stops a step by signalling that group, and the group has no terminal to inject input into.
 * Nor `--die-with-parent`: the runner signals the whole group, bwrap's own process included,
 * and that option would turn its SIGTERM into an immediate SIGKILL of the step, taking away
 * the grace a step gets to clean up. When the command exits, bwrap's init (pid 1 of the
 * namespace) exits and the kernel kills whatever the command left running.
 */
export class Sandbox {
  private readonly prefix: string[];
  private readonly visibleRoots: string[];
  private readonly hidden: string[];
  private readonly workRoots: string[];

  constructor(readonly options: SandboxOptions) {
    const uid = options.uid ?? defaultUid();
    const gid = options.gid ?? (uid === 65534 ? 65534 : (process.getgid?.() ?? uid));
    const args = [
      "--unshare-user",
      // No user namespace of a command's own inside: in one it would hold every capability, and
      // reach the kernel code (nf_tables, mounts) most container escapes went through.
      ...(disablesUserns(options.bwrap) ? ["--disable-userns"] : []),
      "--uid",
      String(uid),
      "--gid",
      String(gid),
      "--unshare-pid",
      "--unshare-ipc",
      "--proc",
      "/proc",
      "--dev",
      "/dev",
      "--tmpfs",
      "/run",
    ];
    this.visibleRoots = [];
    for (const folder of [...SYSTEM_FOLDERS, ...nodeInstallFolder()]) {
      let isLink: boolean;
      try {
        isLink = lstatSync(folder).isSymbolicLink();
      } catch {
        continue;
      }
      // Merged-/usr systems: /bin -> usr/bin stays a link, so paths resolve as on the host.
      if (isLink) args.push("--symlink", readlinkSync(folder), folder);
      else args.push("--ro-bind", folder, folder);
      this.visibleRoots.push(folder);
    }
    for (const file of [...resolverFiles(this.visibleRoots), ...MACHINE_SECRETS.filter(readable)]) {
      if (MACHINE_SECRETS.includes(file)) args.push("--ro-bind", "/dev/null", file);
      else args.push("--ro-bind", file, file);
    }
    this.workRoots = (options.workRoots ?? []).map(realPath);
    this.hidden = [...new Set([...options.hide.map(realPath), ...this.workRoots])];
    this.prefix = [options.bwrap, ...args];
  }

  /**
   * Why `exposure` cannot be granted, if it cannot: a folder no run may work in (`/`, a runtime
   * folder, the host's temp folder: core/work-folders.ts), or one inside a hidden folder (it would
   * show part of what the sandbox hides). Where a run may work is not the sandbox's to say: the
   * runner asked core/work-folders.ts before anything started.
   */
  refusal(exposure: SandboxExposure): string | undefined {
    const cwd = resolve(exposure.cwd);
    const machine = machineFolderProblem(cwd);
    if (machine) return machine;
    // The folder bwrap binds is the link's target: judge that, so a link cannot lead elsewhere.
    const real = realPath(cwd);
    const hiding = this.hidden.find((hidden) => isWithin(cwd, hidden) || isWithin(real, hidden));
    const madeForIt =
      exposure.runnerMadeCwd === true && this.workRoots.some((root) => real !== root && isWithin(real, root));
    if (hiding !== undefined && !madeForIt)
      return `cwd "${cwd}" is inside ${hiding}, which sandboxed commands cannot see`;
    return undefined;
  }

  /**
   * Why the runner, outside the sandbox, may not write a step's files into `folder` on the host
   * (`output_path`): it lies inside a folder the sandbox hides (the runner's and server's homes,
   * whose run /tmp folders belong to other runs), or a link leads it there. Judged by where the
   * deepest part that exists leads, as the folder may not exist yet.
   */
  hostFolderRefusal(folder: string): string | undefined {
    const absolute = resolve(folder);
    const real = existingRealPath(absolute);
    const hiding = this.hidden.find((hidden) => isWithin(absolute, hidden) || isWithin(real, hidden));
    if (hiding === undefined) return undefined;
    return `"${folder}"${real === absolute ? "" : ` (really ${real})`} is inside ${hiding}, which sandboxed steps cannot see`;
  }

  /**
   * The argv that runs `argv` sandboxed with `exposure` (see `refusal` first); `files` are shown
   * read-only inside, each host path at its path there (under /run, which is the sandbox's own).
   */
  command(
    argv: readonly string[],
    exposure: SandboxExposure,
    files: ReadonlyArray<readonly [host: string, inside: string]> = [],
  ): string[] {
    const cwd = resolve(exposure.cwd);
    const mounts: Mount[] = [{ path: cwd, args: ["--bind", cwd, cwd], order: 1 }];
    for (const folder of exposure.writable ?? []) {
      const path = resolve(folder);
      mounts.push({ path, args: ["--bind", path, path], order: 1 });
    }
    for (const folder of exposure.readable ?? []) {
      const path = resolve(folder);
      mounts.push({ path, args: ["--ro-bind", path, path], order: 1 });
    }
    const home = exposure.home === undefined ? undefined : resolve(exposure.home);
    if (home !== undefined && home !== "/" && !isWithin(home, cwd) && !this.isSystem(home)) {
      // The run's own home folder where it has one (kept across its sandboxes), else an empty one.
      const folder = exposure.homeFolder === undefined ? undefined : resolve(exposure.homeFolder);
      mounts.push({ path: home, args: folder ? ["--bind", folder, home] : ["--tmpfs", home], order: 0 });
    }
    const shown = [...this.visibleRoots, ...mounts.map((mount) => mount.path)];
    for (const hidden of this.hidden) {
      // A hidden folder only needs covering where something shown contains it, and where it
      // exists: bwrap would make it, on the host inside a read-write bind.
      if (shown.some((root) => isWithin(hidden, root)) && existsSync(hidden))
        mounts.push({ path: hidden, args: ["--tmpfs", hidden], order: 2 });
    }
    // The run's /tmp, or an empty one: never the host's, whose listing shows every other
    // command's scratch folders and sockets. Not among what is shown above: nothing of the host
    // lies under it.
    mounts.push({
      path: "/tmp",
      args: exposure.tmp === undefined ? ["--tmpfs", "/tmp"] : ["--bind", resolve(exposure.tmp), "/tmp"],
      order: 0,
    });
    // The run's own /tmp and home folder outlive the sandbox, and its commands write there: a
    // mount point bwrap would make inside them (the run's folders, shown at their host paths,
    // where the runner's home lies under /tmp or ~) is made on a tmpfs instead. bwrap follows
    // links in a mount's path, its view of the host (/oldroot) included, so a link a command left
    // there would have it make those folders anywhere on the host, with the runner's rights.
    const kept = [
      ...(exposure.tmp === undefined ? [] : ["/tmp"]),
      ...(home !== undefined && exposure.homeFolder !== undefined && mounts.some((m) => m.path === home)
        ? [home]
        : []),
    ];
    for (const root of kept) {
      for (const mount of [...mounts]) {
        if (mount.path === root || !isWithin(mount.path, root)) continue;
        const cover = join(root, mount.path.slice(root.length + 1).split(sep)[0]!);
        if (cover === mount.path || mounts.some((other) => other.path === cover)) continue;
        mounts.push({ path: cover, args: ["--tmpfs", cover], order: -1 });
      }
    }
    // A mount covers what an earlier one put under its path: outer folders first, and at the
    // same depth the hiding tmpfs last, so it wins.
    mounts.sort((a, b) => depth(a.path) - depth(b.path) || a.order - b.order);
    // A network of its own (sandbox-network.ts): its bwrap arguments, and the forwarder first.
    const network = exposure.network;
    const command = network ? network.wrap(argv) : argv;
    const networkArgs = network?.bwrapArgs ?? [];
    return [
      ...this.prefix,
      ...mounts.flatMap((mount) => mount.args),
      ...files.flatMap(([host, inside]) => ["--ro-bind", host, inside]),
      ...networkArgs,
      "--chdir",
      cwd,
      "--",
      ...command,
    ];
  }

  private isSystem(path: string): boolean {
    return this.visibleRoots.some((root) => isWithin(path, root) || isWithin(root, path));
  }
}

interface Mount {
  path: string;
  args: string[];
  /** Among mounts of the same depth: the home tmpfs, then binds, then what hides. */
  order: number;
}

/** Whether this bwrap (0.8 and later) can keep a sandbox's commands from making user namespaces. */
function disablesUserns(bwrap: string): boolean {
  let known = userNamespaceSupport.get(bwrap);
  if (known === undefined) {
    try {
      known = execFileSync(bwrap, ["--help"], { encoding: "utf8", timeout: 10_000 }).includes(
        "--disable-userns",
      );
    } catch (error) {
      known = String((error as { stdout?: unknown }).stdout ?? "").includes("--disable-userns");
    }
    userNamespaceSupport.set(bwrap, known);
  }
  return known;
}

const userNamespaceSupport = new Map<string, boolean>();

/** `path` with the links of its deepest existing part resolved, and the rest as written. */
function existingRealPath(path: string): string {
  let existing = path;
  const rest: string[] = [];
  while (!existsSync(existing) && dirname(existing) !== existing) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realPath(existing), ...rest);
}

/**
 * `path` with its links resolved (as far as it exists): bwrap follows links when it binds, so a
 * link to a hidden folder must be judged by where it leads.
 */
export function realPath(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync(absolute);
  } catch {
    return absolute;
  }
}

/** Whether this process may read `file` (a file that does not exist is not). */
function readable(file: string): boolean {
  try {
    accessSync(file, constants.R_OK);
    return true;
  } catch {
    return false;
  }
}

function defaultUid(): number {
  const uid = process.getuid?.() ?? 65534;
  return uid === 0 ? 65534 : uid;
}

function depth(path: string): number {
  return path === "/" ? 0 : path.split(sep).length;
}

/** Whether `path` is `folder` or lies inside it. */
function isWithin(path: string, folder: string): boolean {
  return path === folder || folder === "/" || path.startsWith(`${folder}${sep}`);
}

/** Node's install folder (`<prefix>` of `<prefix>/bin/node`), where it is not a system folder. */
function nodeInstallFolder(): string[] {
  try {
    const prefix = dirname(dirname(realpathSync(process.execPath)));
    return SYSTEM_FOLDERS.some((folder) => isWithin(prefix, folder)) || prefix === "/" ? [] : [prefix];
  } catch {
    return [];
  }
}

/**
 * /etc/resolv.conf is often a link into /run (systemd-resolved), which the sandbox replaces:
 * its target is shown read-only so that name resolution keeps working.
 */
function resolverFiles(visibleRoots: readonly string[]): string[] {
  try {
    const target = realpathSync("/etc/resolv.conf");
    return visibleRoots.some((root) => isWithin(target, root)) ? [] : [target];
  } catch {
    return [];
  }
}
