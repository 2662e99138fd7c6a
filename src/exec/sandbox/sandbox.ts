import { execFile, execFileSync } from "node:child_process";
import { accessSync, constants, existsSync, lstatSync, readlinkSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve, sep } from "node:path";
import { machineFolderProblem } from "../../core/work-folders.js";
import type { ExecExposure } from "../types.js";
import { DEVICE_NODES } from "./device-nodes.js";
import { procFilesToCover } from "./proc-covers.js";
import type { PidsHierarchy } from "./run-cgroup.js";

/** How a runner keeps a run's processes from the others and from itself (see RunnerInfo.isolation). */
export type SandboxProbe =
  | { isolation: "sandbox"; bwrap: string }
  | { isolation: "none"; problem: string; hint: string };

/**
 * Whether bubblewrap can make private user, mount and pid namespaces here (installed, and user
 * namespaces or its setuid bit working). Runs bwrap once per runner start: the kernel may refuse it.
 */
export async function probeSandbox(bwrap = "bwrap", tries = 3): Promise<SandboxProbe> {
  // Retried: a machine briefly short of processes or namespaces must not drop the sandbox for good.
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
  /** Hidden by an empty tmpfs even inside a shown folder: the runner's and server's homes, workspace root. */
  hide: string[];
  /**
   * Hidden folders where the runner makes one folder per piece of work (agents' worktrees): a
   * runner-made cwd strictly inside one is shown, its siblings stay hidden.
   */
  workRoots?: string[];
  /** At most `max` processes in each run's sandbox (its cgroup's `pids.max`); absent: no limit. */
  pids?: { hierarchy: PidsHierarchy; max: number };
  /** The uid and gid a sandboxed process sees; 65534 (nobody) for a runner that runs as root. */
  uid?: number;
  gid?: number;
  /**
   * Runs' sandboxes are cloned from a template bwrap makes once (sandbox-template.ts), where the
   * kernel allows; `onFallback` hears once why a runner makes them with bwrap after all.
   */
  clones?: { onFallback(reason: string): void };
  /** A root runner's own device nodes (device-nodes.ts), shown in /dev in place of the host's. */
  devices?: string;
}

/** What one command sees besides the system: its cwd and scratch folders read-write, and `readable`. */
export interface SandboxExposure extends ExecExposure {
  cwd: string;
  /** `$HOME` of the command: an empty private tmpfs there, so tools that write under it work. */
  home?: string | undefined;
}

/**
 * System folders every sandboxed process sees read-only: an allowlist, not `/` with holes, so
 * what the machine keeps elsewhere (/root, /home, /var, /srv, /work, checkouts) stays out unlisted.
 */
const SYSTEM_FOLDERS = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt"];

/**
 * /etc files with the machine's secrets, readable by a root runner: shown as /dev/null. Only those
 * the runner's user can read are covered (a bind mount each, about 0.3 ms per step): a sandboxed
 * process has that user's identity and fewer rights, so cannot read the rest either.
 */
const MACHINE_SECRETS = ["/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers"];

/**
 * Builds the bubblewrap command line for one sandboxed command: a private user namespace (no
 * capabilities, a uid that is not root), a pid namespace with its own /proc (no other process or
 * its environment visible), a private IPC namespace, a minimal /dev, a private /tmp (the run's,
 * or empty), an empty /run (no host unix socket such as /var/run/docker.sock is reachable), the
 * system folders read-only, cwd and scratch folders read-write. The network stays the host's
 * (steps fetch, push and call services) unless `exposure.network` gives one of its own.
 *
 * No `--new-session`: the command stays in its launcher's process group, which the runner signals
 * to stop it, and which has no terminal to inject input into. No `--die-with-parent`: it would
 * turn the group's SIGTERM into an immediate SIGKILL, taking away a step's grace to clean up.
 * When the command exits, bwrap's init (pid 1) exits and the kernel kills what it left running.
 */
export class Sandbox {
  private readonly prefix: string[];
  private readonly visibleRoots: string[];
  private readonly hidden: string[];
  private readonly workRoots: string[];
  /** The real paths of folders the runner made itself, by the exact path it named (`madeFolder`). */
  private readonly made = new Map<string, string>();

  constructor(readonly options: SandboxOptions) {
    const uid = options.uid ?? defaultUid();
    const gid = options.gid ?? (uid === 65534 ? 65534 : (process.getgid?.() ?? uid));
    const args = [
      "--unshare-user",
      // No nested user namespace: in one a command holds every capability, and reaches the kernel
      // code (nf_tables, mounts) most container escapes went through.
      ...(disablesUserns(options.bwrap) ? ["--disable-userns"] : []),
      "--uid",
      String(uid),
      "--gid",
      String(gid),
      "--unshare-pid",
      "--unshare-ipc",
      "--proc",
      "/proc",
      // Read-only: a root runner's sandboxed uid is the host's root to the kernel's sysctl checks,
      // which look at the uid alone, and bwrap leaves /proc/sys writable (it covers only what
      // access(W_OK) says is): a step could set kernel.core_pattern, a program the host runs as
      // root. What a sysctl shows follows the reader's namespaces, not the mount's: its own
      // network's values still.
      "--ro-bind",
      "/proc/sys",
      "/proc/sys",
      // And every other /proc file its owner alone may write (proc-covers.ts): /proc/mtrr, ...
      ...procFilesToCover().flatMap((file) => ["--ro-bind-try", file, file]),
      "--dev",
      "/dev",
      ...(options.devices
        ? DEVICE_NODES.flatMap(([name]) => ["--dev-bind", join(options.devices!, name), `/dev/${name}`])
        : []),
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
    // By their deepest existing part: a folder the runner makes later (its workspace) lies where its
    // parent leads, a home that is a link included, and a run's folder there is judged by that.
    this.workRoots = (options.workRoots ?? []).map(existingRealPath);
    this.hidden = [...new Set([...options.hide.map(existingRealPath), ...this.workRoots])];
    this.prefix = [options.bwrap, ...args];
  }

  /**
   * Why `exposure` cannot be granted: a folder no run may work in (`/`, a runtime folder, the
   * host's temp folder: core/work-folders.ts), or one inside a hidden folder (it would show part
   * of what the sandbox hides).
   */
  refusal(exposure: SandboxExposure): string | undefined {
    const cwd = resolve(exposure.cwd);
    const machine = machineFolderProblem(cwd);
    if (machine) return machine;
    // The folder bwrap binds is the link's target: judge that, so a link cannot lead elsewhere.
    const real = this.realPath(cwd);
    const hiding = this.hidden.find((hidden) => isWithin(cwd, hidden) || isWithin(real, hidden));
    const madeForIt =
      exposure.runnerMadeCwd === true && this.workRoots.some((root) => real !== root && isWithin(real, root));
    if (hiding !== undefined && !madeForIt)
      return `cwd "${cwd}" is inside ${hiding}, which sandboxed commands cannot see`;
    return undefined;
  }

  /**
   * `path` with its links resolved, as bwrap finds it: a folder the runner made (`madeFolder`) by
   * its real path then, with no system call; any other path looked up now, since a step may have
   * left a link wherever it can write (a member's cwd, a folder under its run's).
   */
  realPath(path: string): string {
    return this.made.get(path) ?? realPath(path);
  }

  /**
   * The runner just made `folder` (a `mkdir` that met no EEXIST: no link) as `real`, in a folder of
   * its own whose real path it resolved at start. Its real path cannot change while it is kept: a
   * sandboxed command sees it only as a mount point (renamed or removed: EBUSY), never its parent,
   * which the runner alone writes, and another run's commands see neither. Asked by both names.
   */
  madeFolder(folder: string, real: string): void {
    this.made.set(folder, real);
    this.made.set(real, real);
  }

  /** `folder` is going (its run's end, a pooled one renamed): looked up again if named later. */
  forgetFolder(folder: string): void {
    const real = this.made.get(folder);
    this.made.delete(folder);
    if (real !== undefined) this.made.delete(real);
  }

  /**
   * Why the runner may not write a step's files into host `folder` (`output_path`): it lies, or a
   * link leads, inside a hidden folder (the homes, whose run /tmp folders belong to other runs).
   * Judged by its deepest existing part, as it may not exist yet.
   */
  hostFolderRefusal(folder: string): string | undefined {
    const absolute = resolve(folder);
    const real = existingRealPath(absolute);
    const hiding = this.hidden.find((hidden) => isWithin(absolute, hidden) || isWithin(real, hidden));
    if (hiding === undefined) return undefined;
    return `"${folder}"${real === absolute ? "" : ` (really ${real})`} is inside ${hiding}, which sandboxed steps cannot see`;
  }

  /** The argv that runs `argv` with `exposure` (ask `refusal` first); `files` bound read-only under /run. */
  command(
    argv: readonly string[],
    exposure: SandboxExposure,
    files: ReadonlyArray<readonly [host: string, inside: string]> = [],
  ): string[] {
    const network = exposure.network;
    const command = network ? network.wrap(argv) : argv;
    const networkArgs = network?.bwrapArgs ?? [];
    return [
      ...this.prefix,
      ...this.runMounts(exposure),
      ...files.flatMap(([host, inside]) => ["--ro-bind", host, inside]),
      ...networkArgs,
      "--chdir",
      resolve(exposure.cwd),
      "--",
      ...command,
    ];
  }

  /** The argv of a sandbox with none of a run's folders: the template runs' sandboxes are cloned from. */
  templateCommand(
    argv: readonly string[],
    files: ReadonlyArray<readonly [host: string, inside: string]>,
  ): string[] {
    return [...this.prefix, ...files.flatMap(([host, inside]) => ["--ro-bind", host, inside]), "--", ...argv];
  }

  /** bwrap's mount arguments for what `exposure` shows besides the system: its folders, /tmp, $HOME, hidden folders. */
  runMounts(exposure: SandboxExposure): string[] {
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
      // The run's home folder (kept across its sandboxes), else an empty one.
      const folder = exposure.homeFolder === undefined ? undefined : resolve(exposure.homeFolder);
      mounts.push({ path: home, args: folder ? ["--bind", folder, home] : ["--tmpfs", home], order: 0 });
    }
    const shown = [...this.visibleRoots, ...mounts.map((mount) => mount.path)];
    for (const hidden of this.hidden) {
      // Covered only where shown and existing: else bwrap would make it on the host, in a read-write bind.
      if (shown.some((root) => isWithin(hidden, root)) && existsSync(hidden))
        mounts.push({ path: hidden, args: ["--tmpfs", hidden], order: 2 });
    }
    // Never the host's /tmp, whose listing shows every other command's scratch folders and sockets.
    // Not in `shown`: nothing of the host lies under it.
    mounts.push({
      path: "/tmp",
      args: exposure.tmp === undefined ? ["--tmpfs", "/tmp"] : ["--bind", resolve(exposure.tmp), "/tmp"],
      order: 0,
    });
    // The run's /tmp and home outlive the sandbox and its commands write there: a mount point
    // bwrap would make inside them (host-path folders, where the runner's home lies under /tmp or
    // ~) goes on a tmpfs. bwrap follows links in a mount's path, /oldroot included, so a link a
    // command left there would make those folders anywhere on the host, with the runner's rights.
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
    // Later mounts cover earlier ones: outer folders first, at one depth the hiding tmpfs last.
    mounts.sort((a, b) => depth(a.path) - depth(b.path) || a.order - b.order);
    return mounts.flatMap((mount) => mount.args);
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
export function existingRealPath(path: string): string {
  let existing = path;
  const rest: string[] = [];
  while (!existsSync(existing) && dirname(existing) !== existing) {
    rest.unshift(basename(existing));
    existing = dirname(existing);
  }
  return join(realPath(existing), ...rest);
}

/**
 * `path` with its links resolved: bwrap follows links when binding, so judge where a link leads.
 * By the C library's realpath (one call), not Node's (an lstat for each part of the path).
 */
export function realPath(path: string): string {
  const absolute = resolve(path);
  try {
    return realpathSync.native(absolute);
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

/** /etc/resolv.conf often links into /run (systemd-resolved), replaced in a sandbox: show its target. */
function resolverFiles(visibleRoots: readonly string[]): string[] {
  try {
    const target = realpathSync("/etc/resolv.conf");
    return visibleRoots.some((root) => isWithin(target, root)) ? [] : [target];
  } catch {
    return [];
  }
}
