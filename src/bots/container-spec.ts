import type { ContainerCreateOptions } from "dockerode";
import type { BotOwnership, ContainerLimits } from "./types.js";

/** Seed 001's limits: 256 MB, half a CPU, 100 processes. */
export const defaultContainerLimits: ContainerLimits = {
  memoryBytes: 256 * 1024 * 1024,
  cpus: 0.5,
  pids: 100,
};

/** `nobody:nogroup` on Debian and busybox; numeric so it needs no passwd entry in the image. */
export const defaultContainerUser = "65534:65534";

/** The label every container runyard manages carries; reconciliation lists by it. */
export const managedLabel = "runyard.managed";

export interface HardenedContainerInput {
  image: string;
  name: string;
  /** The container's environment, secrets included: the only place secrets go (never the image). */
  env: Record<string, string>;
  /** Overrides the image's CMD. */
  cmd?: string[];
  limits: ContainerLimits;
  ownership: BotOwnership;
  /** A Docker network name, `none` (no network) or `host`. */
  network: string;
  /** A numeric non-root `uid:gid`; defaults to 65534:65534. */
  user?: string;
  /** Extra labels (e.g. `runyard.test=1`); they cannot replace the ownership labels. */
  labels?: Record<string, string>;
}

/**
 * The create options of a bot's container (seed 001, issue 10): every capability dropped but
 * NET_BIND_SERVICE, no privilege gain, a numeric non-root user, memory with swap off, CPU and
 * pids limits, a read-only root with a small non-executable /tmp, no bind mounts at all (so never
 * the Docker socket), and labels that say whose it is. Docker never restarts it: runyard does,
 * so that every crash is seen and counted.
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
  for (const key of Object.keys(input.env)) {
    if (key === "" || key.includes("=")) throw new Error(`invalid environment variable name "${key}"`);
  }
  const { ownership } = input;
  return {
    name: input.name,
    Image: input.image,
    ...(input.cmd ? { Cmd: input.cmd } : {}),
    Env: Object.entries(input.env).map(([key, value]) => `${key}=${value}`),
    User: user,
    Labels: {
      ...input.labels,
      "runyard.bot": ownership.botId,
      "runyard.tenant": ownership.tenantId ?? "",
      "runyard.owner": ownership.owner,
      "runyard.expires_at": ownership.expiresAt,
      [managedLabel]: "1",
    },
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
      Tmpfs: { "/tmp": "rw,noexec,nosuid,size=64m" },
      NetworkMode: input.network,
      RestartPolicy: { Name: "no" },
      Binds: [],
      Mounts: [],
      Privileged: false,
    },
  };
}
