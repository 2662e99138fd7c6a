import { execFile } from "node:child_process";

/** How a runner keeps a run's processes from the others and from itself (see RunnerInfo.isolation). */
export type SandboxProbe =
  | { isolation: "sandbox"; bwrap: string }
  | { isolation: "none"; problem: string; hint: string };

/**
 * Whether bubblewrap can give a process a private mount and pid namespace on this machine:
 * it must be installed and user namespaces (or its setuid bit) must work. Asked once per
 * runner start, by running bwrap itself, since a binary that is present may still be refused
 * by the kernel.
 */
export function probeSandbox(bwrap = "bwrap"): Promise<SandboxProbe> {
  const args = [
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
