import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { join } from "node:path";
import { destinationOf, modelDestinations } from "../agents/model-endpoints.js";
import { RunyardError } from "../core/errors.js";
import type { AgentSandbox } from "../core/jobs/agent.js";
import { parseMemorySize } from "../core/memory-size.js";
import { type ContainerEgress, ContainerLauncher, sandboxUser } from "../exec/docker/container-launcher.js";
import type { DockerEngine } from "../exec/docker/docker-engine.js";
import { type EgressDestination, startEgressProxy } from "../exec/egress-proxy.js";
import { isWithin, openToAll } from "../exec/folder-access.js";
import type { ExecExposure, ProcessLauncher } from "../exec/types.js";

/** What a runner brings to sandboxed agent turns (docs/agents.md, "Sandboxed agents"). */
export interface AgentSandboxSettings {
  engine: DockerEngine;
  /** The static egress forwarder (native/build/egress-forward); without it, no `model-only`. */
  forwarder: string | undefined;
  /** The sandbox of tasks that name none (`RUNYARD_AGENT_SANDBOX`); none: they run as processes. */
  defaultSandbox?: AgentSandbox;
  /** Destinations the operator lets every sandbox reach besides the model (`RUNYARD_AGENT_SANDBOX_ALLOW`). */
  allow: EgressDestination[];
  /** A Docker network every sandbox joins instead of the proxy (`RUNYARD_AGENT_SANDBOX_NETWORK`): the operator's choice. */
  openNetwork?: string;
  /** Labels every container carries (the runner's id and its install's), asked at each turn. */
  labels: () => Record<string, string>;
  /**
   * The images a task's own sandbox may name besides the default's (`RUNYARD_AGENT_SANDBOX_IMAGES`):
   * exact references, or `NAME:*` for every tag of NAME. Absent or empty: the default's only.
   */
  images?: readonly string[];
  /** The most a task's sandbox may ask for (`RUNYARD_AGENT_SANDBOX_MAX_*`); absent: no ceiling. */
  ceilings?: SandboxCeilings;
}

/** The operator's ceilings on what a task's sandbox may ask for. */
export interface SandboxCeilings {
  memoryBytes: number;
  cpus: number;
  pids: number;
}

/**
 * Why this runner will not run a task's own sandbox, checked before anything of the task runs:
 * an image its operator does not allow (any image on the runner's Docker engine could otherwise
 * be named, another tenant's bot image among them), or limits over the operator's ceilings.
 * Undefined when the sandbox may run. The runner's default sandbox is the operator's own.
 */
export function sandboxRefusal(
  sandbox: AgentSandbox,
  settings: AgentSandboxSettings,
): RunyardError | undefined {
  const allowed = [
    ...(settings.defaultSandbox ? [settings.defaultSandbox.image] : []),
    ...(settings.images ?? []),
  ];
  if (!imageAllowed(sandbox.image, allowed)) {
    return new RunyardError(
      "AGENT_SANDBOX_IMAGE_NOT_ALLOWED",
      allowed.length === 0
        ? `the sandbox image ${JSON.stringify(sandbox.image)} is not allowed on this runner: it allows no image a task names (no RUNYARD_AGENT_SANDBOX, RUNYARD_AGENT_SANDBOX_IMAGES is empty)`
        : `the sandbox image ${JSON.stringify(sandbox.image)} is not allowed on this runner; it allows ${allowed.join(", ")}`,
    );
  }
  const ceilings = settings.ceilings;
  if (!ceilings) return undefined;
  const over: string[] = [];
  const memory = sandbox.memory === undefined ? undefined : parseMemorySize(sandbox.memory);
  if (memory !== undefined && memory > ceilings.memoryBytes) {
    over.push(
      `memory ${sandbox.memory} is over this runner's ceiling of ${formatBytes(ceilings.memoryBytes)} (RUNYARD_AGENT_SANDBOX_MAX_MEMORY)`,
    );
  }
  if (sandbox.cpus !== undefined && sandbox.cpus > ceilings.cpus) {
    over.push(
      `cpus ${sandbox.cpus} is over this runner's ceiling of ${ceilings.cpus} (RUNYARD_AGENT_SANDBOX_MAX_CPUS)`,
    );
  }
  if (sandbox.pids !== undefined && sandbox.pids > ceilings.pids) {
    over.push(
      `pids ${sandbox.pids} is over this runner's ceiling of ${ceilings.pids} (RUNYARD_AGENT_SANDBOX_MAX_PIDS)`,
    );
  }
  if (over.length === 0) return undefined;
  return new RunyardError(
    "AGENT_SANDBOX_OVER_LIMIT",
    `the task's sandbox asks for too much: ${over.join("; ")}`,
  );
}

/**
 * Whether `image` is one of `allowed`: the same reference once both are written out in full (a
 * bare name is its `latest`, `docker.io/library/` is dropped), or a tag of NAME for `NAME:*`.
 * An image id or a digest is allowed only where it is listed as it is.
 */
export function imageAllowed(image: string, allowed: readonly string[]): boolean {
  const ref = fullImageRef(image);
  return allowed.some((entry) => {
    if (!entry.endsWith(":*")) return fullImageRef(entry) === ref;
    const name = shortImageName(entry.slice(0, -2));
    return ref.startsWith(`${name}:`) && /^\w[\w.-]{0,127}$/.test(ref.slice(name.length + 1));
  });
}

/** An image reference written out: `busybox` is `busybox:latest`; `docker.io/library/` dropped. */
export function fullImageRef(image: string): string {
  const ref = shortImageName(image.trim());
  if (ref.includes("@")) return ref;
  const last = ref.slice(ref.lastIndexOf("/") + 1);
  return last.includes(":") ? ref : `${ref}:latest`;
}

function shortImageName(ref: string): string {
  return ref.replace(/^(docker\.io|index\.docker\.io)\//, "").replace(/^library\//, "");
}

function formatBytes(bytes: number): string {
  for (const [unit, size] of [
    ["g", 1024 ** 3],
    ["m", 1024 ** 2],
    ["k", 1024],
  ] as const) {
    if (bytes >= size) return `${Math.round((bytes / size) * 10) / 10}${unit}`;
  }
  return `${bytes}`;
}

/** The agent runner's defaults for an agent's container: enough for a CLI, a language server and a test run. */
const defaults = { memoryBytes: 2 * 1024 ** 3, cpus: 2, pids: 512 };

/** A turn's sandbox: the launcher its commands go through, and how to take it down. */
export interface OpenSandbox {
  launcher: ProcessLauncher;
  /** What the turn is told at its start (the network it has). */
  notices: string[];
  close(): Promise<void>;
}

/**
 * Prepares the container side of one sandboxed turn: the egress proxy on a Unix socket in a
 * folder of its own (for `model-only`), allowing the agent's model destinations and the
 * operator's list and telling `refused` of everything else, and a launcher that runs the turn's
 * commands in hardened containers. Under a root runner the container's user is nobody, so the
 * folders the runner made for the turn are opened to it (they lie in the runner's private home);
 * a folder the runner did not make (a task's own cwd, a user's config) is never touched.
 */
export async function openSandbox(
  sandbox: AgentSandbox,
  settings: AgentSandboxSettings,
  turn: {
    agent: string;
    runId: string;
    cwd: string;
    exposure: ExecExposure;
    runnerEnv: Readonly<Record<string, string | undefined>>;
    taskEnv: Readonly<Record<string, string>>;
    /** The task's git remote, which an agent may fetch from (pushes stay with the runner). */
    remote?: string | undefined;
    stateRoot: string;
    /** The runner's `<home>/agents`. */
    agentsHome: string;
    /**
     * The folders the runner made for this turn (its worktree, scratch and state folders): under
     * a root runner the container's user is nobody, and these are opened to it; nothing else is.
     */
    runnerMade: string[];
    /** Of those, the ones the turn's own code may add folders to between commands (its scratch and state). */
    reopened: string[];
    /** Folders the runner shares read-only with the turn (the mirror's objects its task repo borrows): opened for reading only. */
    borrowed: string[];
    /** The runner's own listeners the turn reaches by name (its model key proxies), allowed first. */
    reached?: EgressDestination[];
    refused(destination: EgressDestination): void;
  },
): Promise<OpenSandbox | { problem: string; hint: string }> {
  const limits = {
    memoryBytes: sandbox.memory === undefined ? defaults.memoryBytes : (parseMemorySize(sandbox.memory) ?? 0),
    cpus: sandbox.cpus ?? defaults.cpus,
    pids: sandbox.pids ?? defaults.pids,
  };
  const user = sandboxUser(turn.cwd);
  const opened = user.startsWith("65534:");
  if (opened) {
    for (const folder of turn.runnerMade) await openToAll(folder, true);
    for (const folder of turn.borrowed) await openToAll(folder, false);
    // The CLIs `runyard agents install` put in the runner's home; a CLI found elsewhere is read as it is.
    for (const folder of turn.exposure.readable ?? []) {
      if (isWithin(folder, turn.agentsHome)) await openToAll(folder, false);
    }
  }
  const notices: string[] = [];
  let egress: ContainerEgress;
  let closeProxy = async () => {};
  if (settings.openNetwork) {
    egress = { kind: "open", network: settings.openNetwork };
    notices.push(
      `the sandbox joins the Docker network ${settings.openNetwork} (the runner's RUNYARD_AGENT_SANDBOX_NETWORK): its egress is not held to the model endpoint`,
    );
  } else if (sandbox.network === "none") {
    egress = { kind: "none" };
  } else {
    if (!settings.forwarder) {
      return {
        problem:
          "this runner cannot hold a sandbox's egress to the model: its egress forwarder was not built",
        hint: 'Install a C compiler with static libc (Debian: apt-get install gcc libc6-dev) and run `npm rebuild runyard` (or sh native/build.sh) on the runner, or ask for "network": "none".',
      };
    }
    const parent = await mkdtemp(join(turn.stateRoot, "egress-"));
    const socketFolder = join(parent, "socket");
    await mkdir(socketFolder);
    // Reached by the container's user, who is not the runner's; the parent stays private.
    await chmod(socketFolder, 0o755);
    const socketPath = join(socketFolder, "egress.sock");
    // The remote is the task's (a member's): like a member's model endpoint, public addresses only.
    const remote = turn.remote ? destinationOf(turn.remote) : undefined;
    const allow = [
      ...(turn.reached ?? []),
      ...modelDestinations(turn.agent, turn.runnerEnv, turn.taskEnv),
      ...(remote ? [{ ...remote, publicOnly: true }] : []),
      ...settings.allow,
    ];
    const proxy = await startEgressProxy({ socketPath }, { allow, refused: turn.refused });
    await chmod(socketPath, 0o666);
    egress = { kind: "proxy", forwarder: settings.forwarder, socketFolder, socketName: "egress.sock" };
    closeProxy = async () => {
      await proxy.close();
      await rm(parent, { recursive: true, force: true });
    };
  }
  const launcher = new ContainerLauncher({
    engine: settings.engine,
    // Written out in full, so Docker cannot read it as an image id.
    image: fullImageRef(sandbox.image),
    limits,
    egress,
    labels: { ...settings.labels(), "runyard.run": turn.runId, "runyard.agent": turn.agent },
    user,
    ...(opened ? { reopen: turn.reopened } : {}),
  });
  return {
    launcher,
    notices,
    close: async () => {
      await launcher.close();
      await closeProxy();
    },
  };
}
