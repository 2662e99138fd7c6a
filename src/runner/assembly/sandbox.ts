import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../../core/config.js";
import type { Logger } from "../../core/logger.js";
import { ownDeviceNodes } from "../../exec/sandbox/device-nodes.js";
import { clearLeftovers, findPidsHierarchy } from "../../exec/sandbox/run-cgroup.js";
import { probeSandbox, Sandbox } from "../../exec/sandbox/sandbox.js";

/** What a runner hides from its steps and where it makes folders of work (see SandboxOptions). */
export interface RunnerSandboxOptions {
  /** Sandbox even a runner that serves one principal (`runyard up`'s local runner). */
  always: boolean;
  /** The runner's home, the server's home: never shown to a step. */
  hide: string[];
  /** Where the runner makes a folder per agent task: hidden but for each task's own. */
  workRoots: string[];
  /** The runner's state folder (one live runner each, its pid lock): names its runs' cgroups' folder. */
  stateDir: string;
}

/**
 * The sandbox a runner's steps and agent turns run in, or none. A runner that serves more than
 * one principal (any runner outside a tenant: it takes the runs of every user outside tenants)
 * sandboxes every process it starts where bubblewrap works; one that cannot, or whose operator
 * turned the sandbox off, says so once and runs them as plain process groups.
 */
export async function runnerSandbox(
  config: Config,
  options: RunnerSandboxOptions,
  logger: Logger,
): Promise<Sandbox | undefined> {
  const manyPrincipals = config.tenantId === undefined;
  if (!options.always && !manyPrincipals) return undefined;
  if (config.sandbox === "off") {
    logger.warn(
      "steps run without a sandbox (RUNYARD_SANDBOX=off): they can read what this runner's user can read, its home and other runs included",
    );
    return undefined;
  }
  const probe = await probeSandbox();
  if (probe.isolation === "none") {
    logger.warn(
      { problem: probe.problem, hint: probe.hint },
      "steps run without a sandbox: they can read what this runner's user can read",
    );
    return undefined;
  }
  const owner = `runner-${createHash("sha256").update(options.stateDir).digest("hex").slice(0, 16)}`;
  const pids = config.runPidsMax > 0 ? findPidsHierarchy(owner) : undefined;
  if (pids && "problem" in pids)
    logger.warn(
      { problem: pids.problem },
      "runs' sandboxes are not held to RUNYARD_RUN_PIDS_MAX processes: a fork bomb of a step can fill the machine's process table",
    );
  else if (pids) {
    const left = await clearLeftovers(pids);
    if (left.removed + left.busy > 0)
      logger.warn(
        { folder: pids.folder, ...left },
        left.busy > 0
          ? `removed ${left.removed} run cgroups this runner's previous life left; ${left.busy} still hold processes`
          : `removed ${left.removed} run cgroups this runner's previous life left`,
      );
  }
  // Only a root runner's steps are the owner of the host's nodes (device-nodes.ts).
  const devices = process.getuid?.() === 0 ? ownDeviceNodes(join(options.stateDir, "devices")) : undefined;
  if (typeof devices === "object")
    logger.warn(
      { problem: devices.problem },
      "sandboxes show the host's device nodes in /dev: a step of this root runner could chmod them (the host's /dev/null)",
    );
  return new Sandbox({
    bwrap: probe.bwrap,
    ...(typeof devices === "string" ? { devices } : {}),
    ...(pids && !("problem" in pids)
      ? { pids: { hierarchy: pids, max: pidsPerRun(config, machinePidMax(), logger) } }
      : {}),
    hide: options.hide,
    workRoots: options.workRoots,
    ...(config.sandboxClones
      ? {
          clones: {
            onFallback: (reason: string) =>
              logger.warn(
                { problem: reason },
                "runs' sandboxes are made by bubblewrap, not cloned from a template: each costs bwrap's start",
              ),
          },
        }
      : {}),
  });
}

/**
 * RUNYARD_RUN_PIDS_MAX, held to what leaves half the machine's process ids free while the runner
 * runs `capacity` runs at once: each run's fork bomb may fill its limit, and together they must
 * not fill the table the machine (the runner itself, sshd, the server) forks from.
 */
export function pidsPerRun(
  config: Pick<Config, "runPidsMax" | "capacity">,
  pidMax: number | undefined,
  logger: { warn(fields: object, message: string): void },
): number {
  if (pidMax === undefined) return config.runPidsMax;
  const share = Math.max(16, Math.floor(pidMax / 2 / config.capacity));
  if (config.runPidsMax <= share) return config.runPidsMax;
  logger.warn(
    { pid_max: pidMax, capacity: config.capacity },
    `each run's sandbox holds at most ${share} processes, not RUNYARD_RUN_PIDS_MAX=${config.runPidsMax}: ${config.capacity} runs at once may take half of the machine's ${pidMax} process ids, no more (raise kernel.pid_max, or lower the runner's capacity)`,
  );
  return share;
}

function machinePidMax(): number | undefined {
  try {
    return Number(readFileSync("/proc/sys/kernel/pid_max", "utf8")) || undefined;
  } catch {
    return undefined;
  }
}
