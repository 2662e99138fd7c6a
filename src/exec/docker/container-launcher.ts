import { randomBytes } from "node:crypto";
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { openToAll } from "../folder-access.js";
import { startProblem } from "../process/spawn-launcher.js";
import type { ExecRequest, ExecResult, ProcessLauncher } from "../types.js";
import { notStarted } from "../types.js";
import { RunningContainers } from "./container-run.js";
import {
  type ContainerLimits,
  type ContainerMount,
  containerUser,
  hardenedContainer,
} from "./container-spec.js";
import type { DockerEngine } from "./docker-engine.js";

/** Where the forwarder and the egress socket appear inside a sandbox's container. */
export const egressMountPoint = "/run/runyard-egress";
/** The loopback port inside the container that the forwarder listens on (HTTPS_PROXY names it). */
export const egressProxyPort = 3128;

/** How a sandboxed agent's container reaches out. */
export type ContainerEgress =
  /** No network at all: loopback only. */
  | { kind: "none" }
  /** The runner's egress proxy only, through a forwarder on the container's loopback. */
  | { kind: "proxy"; forwarder: string; socketFolder: string; socketName: string }
  /** A Docker network of the runner's choosing (`host` where Docker has no bridge). */
  | { kind: "open"; network: string };

export interface ContainerLauncherOptions {
  engine: DockerEngine;
  image: string;
  limits: ContainerLimits;
  egress: ContainerEgress;
  /** Labels that say whose the containers are (run, runner). */
  labels: Record<string, string>;
  /** The user the commands run as; see `sandboxUser`. */
  user: string;
  /**
   * Folders opened to every user before each command (`openToAll`): where the commands run as
   * nobody under a root runner, the runner-made folders its own code adds to between commands.
   */
  reopen?: string[];
}

/**
 * Runs each command in a hardened container of `image` (container-spec.ts): an agent turn's
 * launcher when its task asks for a sandbox. The cwd and exposure folders are bind-mounted at
 * their host paths (read-write or read-only as exposed), so the agent's paths mean the same
 * inside; nothing else of the machine is there, and home is private and in memory. Output, timeout
 * and cancel behave as a process group's; the container is removed however the command ended.
 */
export class ContainerLauncher implements ProcessLauncher {
  private readonly running: RunningContainers;

  constructor(private readonly options: ContainerLauncherOptions) {
    this.running = new RunningContainers(options.engine);
  }

  async run(request: ExecRequest): Promise<ExecResult> {
    const startedAt = performance.now();
    const problem = startProblem(request);
    if (problem) return notStarted(startedAt, "failed", problem);
    const { egress } = this.options;
    const cwd = request.cwd === undefined ? undefined : resolve(request.cwd);
    const mounts: ContainerMount[] = [];
    const mounted = new Set<string>();
    const mount = (folder: string, readOnly: boolean) => {
      const path = resolve(folder);
      if (mounted.has(path)) return;
      mounted.add(path);
      mounts.push({ source: path, target: path, readOnly });
    };
    if (cwd) mount(cwd, false);
    for (const folder of request.exposure?.writable ?? []) mount(folder, false);
    for (const folder of request.exposure?.readable ?? []) mount(folder, true);
    let argv = request.argv;
    const env: Record<string, string> = { ...request.env, HOME: sandboxHome };
    trustEveryRepository(env);
    if (egress.kind === "proxy") {
      mounts.push({ source: egress.socketFolder, target: egressMountPoint, readOnly: true });
      mounts.push({ source: egress.forwarder, target: `${egressMountPoint}-forward`, readOnly: true });
      argv = [
        `${egressMountPoint}-forward`,
        String(egressProxyPort),
        `${egressMountPoint}/${egress.socketName}`,
        "--",
        ...argv,
      ];
      const proxy = `http://127.0.0.1:${egressProxyPort}`;
      Object.assign(env, { HTTPS_PROXY: proxy, HTTP_PROXY: proxy, https_proxy: proxy, http_proxy: proxy });
      // Nothing is reached directly: the container has no network but its own loopback.
      for (const name of ["NO_PROXY", "no_proxy"]) delete env[name];
    }
    for (const folder of this.options.reopen ?? []) await openToAll(folder, true);
    let spec: ReturnType<typeof hardenedContainer>;
    try {
      spec = hardenedContainer({
        image: this.options.image,
        name: `runyard-agent-${randomBytes(6).toString("hex")}`,
        env,
        cmd: argv,
        limits: this.options.limits,
        network: egress.kind === "open" ? egress.network : "none",
        user: this.options.user,
        ownerLabels: this.options.labels,
        mounts,
        ...(cwd ? { workingDir: cwd } : {}),
        tmpfs: { [sandboxHome]: `rw,nosuid,size=512m,mode=0700,uid=${uidOf(this.options.user)}` },
      });
    } catch (error) {
      return notStarted(startedAt, "failed", (error as Error).message);
    }
    return this.running.run(spec, {
      onOutput: request.onOutput,
      signal: request.signal,
      timeoutMs: request.timeoutMs,
      killGraceMs: request.killGraceMs,
      oomHint: "raise the sandbox's memory (sandbox.memory, like 2g)",
    });
  }

  /** Removes the containers still running (the turn or the runner is stopping). */
  close(): Promise<void> {
    return this.running.removeAll();
  }
}

/**
 * Tells git in the container (or a Job's pod) that every repository is safe (`safe.directory=*`, after whatever
 * `GIT_CONFIG_*` entries the env has). The worktree is the runner's and the container's user is
 * not (nobody, under a root runner), so git refused it as of "dubious ownership", and the
 * agent's own `git status` failed. The check guards a user from repositories others planted;
 * inside the container the agent can only harm itself, and the runner's git, outside, keeps it.
 */
export function trustEveryRepository(env: Record<string, string>): void {
  const count = Number.parseInt(env.GIT_CONFIG_COUNT ?? "0", 10) || 0;
  env[`GIT_CONFIG_KEY_${count}`] = "safe.directory";
  env[`GIT_CONFIG_VALUE_${count}`] = "*";
  env.GIT_CONFIG_COUNT = String(count + 1);
}

/** The agent's home inside the container: in memory, its own, gone with the container. */
export const sandboxHome = "/home/runyard";

/** A sandbox's user (containerUser); nobody's is opened the folders the runner made (see the agent turns). */
export function sandboxUser(cwd: string | undefined): string {
  return containerUser(cwd ? statSync(cwd, { throwIfNoEntry: false }) : undefined);
}

function uidOf(user: string): string {
  return user.split(":")[0] ?? "65534";
}
