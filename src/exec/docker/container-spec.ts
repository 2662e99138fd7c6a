import type { ContainerCreateOptions } from "dockerode";
import { botImageLabel } from "../../core/container-policy.js";

/** The limits of a container runyard starts (a bot's, or a step's with the docker executor). */
export interface ContainerLimits {
  memoryBytes: number;
  /** CPUs, e.g. 0.5. */
  cpus: number;
  pids: number;
}

/** The avtomatika-bot limits: 256 MB, half a CPU, 100 processes. */
export const defaultContainerLimits: ContainerLimits = {
  memoryBytes: 256 * 1024 * 1024,
  cpus: 0.5,
  pids: 100,
};

/** `nobody:nogroup` on Debian and busybox; numeric so it needs no passwd entry in the image. */
export const defaultContainerUser = "65534:65534";

/**
 * Who a container's commands run as, never root: the runner's own user when it is not root (the
 * files they write are then the runner's); under a root runner, the owner of the folder they work
 * in (`owner`, as the runner found it) when that is not root; else nobody (65534).
 */
export function containerUser(owner: { uid: number | bigint; gid: number | bigint } | undefined): string {
  const uid = process.getuid?.() ?? 0;
  if (uid !== 0) return `${uid}:${process.getgid?.() ?? uid}`;
  if (owner && Number(owner.uid) !== 0 && Number(owner.gid) !== 0) return `${owner.uid}:${owner.gid}`;
  return defaultContainerUser;
}

/** The label every container runyard manages carries; reconciliation lists by it. */
export const managedLabel = "runyard.managed";

/** A host folder a container sees (a step's workspace); the Docker socket is never one. */
export interface ContainerMount {
  source: string;
  target: string;
  readOnly?: boolean;
}

export interface HardenedContainerInput {
  image: string;
  name: string;
  /** The container's environment, secrets included: the only place secrets go (never the image). */
  env: Record<string, string>;
  /** Overrides the image's CMD. */
  cmd?: string[];
  limits: ContainerLimits;
  /** A Docker network name, `none` (no network) or `host`. */
  network: string;
  /** A numeric non-root `uid:gid`; defaults to 65534:65534. */
  user?: string;
  /** Labels; the managed label is always added and cannot be replaced. */
  labels?: Record<string, string>;
  /** Labels that say whose the container is, laid over `labels` so those cannot replace them. */
  ownerLabels: Record<string, string>;
  /** Host folders to mount (none for a bot). */
  mounts?: ContainerMount[];
  workingDir?: string;
  /** Writable in-memory folders besides the non-executable /tmp (an agent's home), with their mount options. */
  tmpfs?: Record<string, string>;
}

/**
 * The create options of a container runyard starts (the avtomatika-bot hardening): every capability
 * dropped but NET_BIND_SERVICE, no privilege gain, a numeric non-root user, memory with swap
 * off, CPU and pids limits, a read-only root with a small non-executable /tmp, only the mounts
 * asked for (never the Docker socket), and labels that say whose it is. Docker never restarts
 * it: runyard does, so that every crash is seen and counted.
 */
export function hardenedContainer(input: HardenedContainerInput): ContainerCreateOptions {
  const user = input.user ?? defaultContainerUser;
  if (!/^[1-9][0-9]*:[1-9][0-9]*$/.test(user)) {
    throw new Error(`container user must be a numeric non-root uid:gid, got "${user}"`);
  }
  const { memoryBytes, cpus, pids } = input.limits;
  if (!(memoryBytes > 0 && cpus > 0 && pids > 0)) {
    throw new Error(`container limits must be positive: ${JSON.stringify(input.limits)}`);
  }
  for (const [key, value] of Object.entries(input.env)) {
    if (key === "" || key.includes("=")) throw new Error(`invalid environment variable name "${key}"`);
    // runc refuses it only at start, quoting `KEY=value` escaped, which no masker recognises.
    if (value.includes("\0")) throw new Error(`environment variable ${key}'s value holds a NUL byte`);
  }
  const mounts = input.mounts ?? [];
  for (const mount of mounts) {
    if (/docker\.sock$|\/var\/run\/docker\b|\/run\/docker\b/.test(mount.source)) {
      throw new Error(
        `refusing to mount ${mount.source} into a container: it would hand out the Docker engine`,
      );
    }
  }
  return {
    name: input.name,
    Image: input.image,
    ...(input.cmd ? { Cmd: input.cmd } : {}),
    ...(input.workingDir ? { WorkingDir: input.workingDir } : {}),
    Env: Object.entries(input.env).map(([key, value]) => `${key}=${value}`),
    User: user,
    // Docker lays these over the image's labels: an image that presets `runyard.bot` makes no
    // step's or agent's container read as that bot's (bots' own owner labels set their id).
    Labels: { [botImageLabel]: "", ...input.labels, ...input.ownerLabels, [managedLabel]: "1" },
    HostConfig: {
      CapDrop: ["ALL"],
      CapAdd: ["NET_BIND_SERVICE"],
      SecurityOpt: ["no-new-privileges"],
      Memory: memoryBytes,
      // Equal to Memory: no swap, so going past the limit is an OOM kill, not a slow crawl.
      MemorySwap: memoryBytes,
      NanoCpus: Math.round(cpus * 1e9),
      PidsLimit: pids,
      ReadonlyRootfs: true,
      Tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m", ...input.tmpfs },
      NetworkMode: input.network,
      RestartPolicy: { Name: "no" },
      // Docker keeps a container's output on the runner's disk; unrotated, a bot that prints
      // without pause for its 24 h fills the disk. runyard keeps the output in its events.
      LogConfig: { Type: "json-file", Config: { "max-size": "10m", "max-file": "2" } },
      // docker-init as PID 1: a program as PID 1 gets no default signal handlers from the kernel,
      // so SIGTERM would be ignored and every stop would wait out the grace; docker-init passes
      // signals on and reaps zombies.
      Init: true,
      Binds: [],
      Mounts: mounts.map((mount) => ({
        Type: "bind" as const,
        Source: mount.source,
        Target: mount.target,
        ReadOnly: mount.readOnly ?? false,
      })),
      Privileged: false,
    },
  };
}
