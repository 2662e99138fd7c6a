import { readdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import type { Readable } from "node:stream";
import type Docker from "dockerode";
import type { ContainerCreateOptions } from "dockerode";
import type * as Tar from "tar";
import { managedLabel } from "./container-spec.js";
import { credentialedPullMark, credentialMarks, pulledWithCredentials } from "./credentialed-pulls.js";
import { type DockerAddress, listContainers, pingEngine } from "./docker-api.js";
import { demultiplex, type LogLine } from "./docker-log-frames.js";
import { pullError, registryOf } from "./docker-pull-error.js";

export type { LogLine } from "./docker-log-frames.js";

/**
 * dockerode, loaded when a container is first made, read or removed (DockerEngine.docker); tar, when
 * an image is first built.
 */
const load = createRequire(import.meta.url);

/** Where the Docker engine listens when DOCKER_HOST does not say. */
const defaultDockerSocket = "/var/run/docker.sock";

/**
 * The engine's endpoint from DOCKER_HOST, as the docker CLI reads it: `unix:///path` or
 * `tcp://host:port` (plain HTTP); unset or empty, the default socket.
 */
export function dockerEndpoint(dockerHost: string | undefined): {
  options: DockerAddress & Docker.DockerOptions;
  /** How messages name it: the socket path or the URL. */
  where: string;
} {
  if (!dockerHost) return { options: { socketPath: defaultDockerSocket }, where: defaultDockerSocket };
  if (dockerHost.startsWith("unix://")) {
    const socketPath = dockerHost.slice("unix://".length);
    return { options: { socketPath }, where: socketPath };
  }
  const url = new URL(dockerHost);
  return {
    options: { host: url.hostname, port: url.port || "2375", protocol: "http" },
    where: dockerHost,
  };
}

/** A build that Docker refused or that failed in a step; carries the build's last output lines. */
export class ImageBuildError extends Error {
  readonly code = "BOT_BUILD_FAILED";
  constructor(
    readonly tag: string,
    readonly reason: string,
    readonly lastLines: string[],
  ) {
    super(`building image ${tag} failed: ${reason}`);
    this.name = "ImageBuildError";
  }
}

export type ContainerStatus =
  | "created"
  | "running"
  | "paused"
  | "restarting"
  | "removing"
  | "exited"
  | "dead";

/** What runyard needs from `docker inspect` to tell running, stopped, crashed and OOM apart. */
export interface ContainerInspection {
  id: string;
  state: ContainerStatus;
  exitCode: number;
  oomKilled: boolean;
  /** ISO times; Docker reports year 1 for "never", given here as null. */
  startedAt: string | null;
  finishedAt: string | null;
  restartCount: number;
  labels: Record<string, string>;
  /** The host pid of the container's first process while it runs, else 0 (its namespaces are under /proc). */
  pid: number;
}

export interface LogOptions {
  /** Only the last N lines. */
  tail?: number;
  /** Unix seconds: only lines after it. */
  since?: number;
  /** Keep reading until the container ends (or the iteration is left, or `signal` aborts). */
  follow?: boolean;
  signal?: AbortSignal;
}

export interface ContainerStats {
  memoryBytes: number;
  /** Of one CPU: 50 means half a core. */
  cpuPercent: number;
  /** The cgroup's memory limit; undefined when the engine did not say. */
  memoryLimitBytes?: number;
  /** Summed over the container's interfaces since it started. */
  netRxBytes?: number;
  netTxBytes?: number;
  pids?: number;
}

export interface ContainerEvent {
  action: "start" | "die" | "oom";
  containerId: string;
  /** `die` only. */
  exitCode?: number;
  labels: Record<string, string>;
  /** Unix nanoseconds, as Docker orders them. */
  timeNano: number;
}

export interface ManagedContainer {
  id: string;
  name: string;
  image: string;
  state: string;
  labels: Record<string, string>;
}

/** Credentials for a private registry; the password never reaches a log line, progress line or error. */
export interface RegistryAuth {
  username: string;
  password: string;
  /** The registry's host[:port]; defaults to the one in the image reference. */
  serveraddress?: string;
}

export interface PullOptions {
  auth?: RegistryAuth;
  /** One line per progress message: `pulling <ref>: <status> <id>`. */
  onProgress?: (line: string) => void;
}

/** How many of a build's output lines a failed build keeps for its error. */
const buildTailLines = 20;

/**
 * The Docker engine as bots use it: a thin layer over dockerode that gives typed answers, plain
 * lines and async iterables instead of Docker's multiplexed and JSON-lines streams. It keeps no
 * state of its own, so a new instance after a restart sees everything (labels are the record).
 */
export class DockerEngine {
  private client: Docker | undefined;

  constructor(
    private readonly address: DockerAddress & Docker.DockerOptions = { socketPath: defaultDockerSocket },
  ) {}

  /**
   * dockerode, made on first use. A runner asks the engine only `ping` and `listManaged` as it
   * starts, in plain requests, so one that runs no container never loads dockerode.
   */
  get docker(): Docker {
    if (!this.client) {
      const Dockerode = load("dockerode") as typeof Docker;
      this.client = new Dockerode(this.address);
    }
    return this.client;
  }

  ping(): Promise<boolean> {
    return pingEngine(this.address);
  }

  /** Every container, running or not, that carries all of `labels` (`key=value` or `key`). */
  listLabelled(labels: string[]): ReturnType<typeof listContainers> {
    return listContainers(this.address, labels);
  }

  /**
   * Builds `contextDir` (holding a Dockerfile) as `tag`. No build args are accepted: secrets
   * given to a build end up in the image's history, so they only ever reach the container's env.
   */
  async build(
    contextDir: string,
    tag: string,
    onProgress: (line: string) => void = () => {},
    labels: Record<string, string> = {},
    /** The network of the build's RUN steps; the engine's default when absent. */
    network?: string,
  ): Promise<void> {
    const { create: createTar } = load("tar") as typeof Tar;
    const context = createTar({ cwd: contextDir, portable: true }, readdirSync(contextDir));
    const stream = (await this.docker.buildImage(context as unknown as NodeJS.ReadableStream, {
      t: tag,
      labels,
      ...(network ? { networkmode: network } : {}),
      rm: true,
      forcerm: true,
    })) as Readable;
    const last: string[] = [];
    const keep = (line: string) => {
      last.push(line);
      if (last.length > buildTailLines) last.shift();
      onProgress(line);
    };
    for await (const message of jsonLines(stream)) {
      const record = message as ProgressLine;
      if (record.error !== undefined) {
        throw new ImageBuildError(tag, record.errorDetail?.message ?? record.error, last);
      }
      const text = record.stream ?? record.status;
      if (text === undefined) continue;
      for (const line of text.split("\n")) if (line.trim() !== "") keep(line.trimEnd());
    }
  }

  /**
   * Pulls `ref` (with registry credentials when given). Failures come back as RunyardErrors:
   * BOT_IMAGE_NOT_FOUND, BOT_REGISTRY_AUTH or BOT_REGISTRY_UNREACHABLE, with the password masked
   * in every message, since Docker and registries may echo what they were sent.
   */
  async pull(ref: string, options: PullOptions = {}): Promise<void> {
    const { auth } = options;
    const mask = (text: string) => (auth?.password ? text.split(auth.password).join("***") : text);
    const onProgress = options.onProgress ?? (() => {});
    try {
      const stream = (await this.docker.pull(ref, {
        ...(auth
          ? {
              authconfig: {
                username: auth.username,
                password: auth.password,
                serveraddress: auth.serveraddress ?? registryOf(ref),
              },
            }
          : {}),
      })) as Readable;
      for await (const message of jsonLines(stream)) {
        const record = message as ProgressLine;
        // An error line: the answer was 200 but the pull failed later (a layer, a refused blob).
        if (record.error !== undefined) throw new Error(record.errorDetail?.message ?? record.error);
        if (record.status === undefined) continue;
        onProgress(mask(`pulling ${ref}: ${record.status}${record.id ? ` ${record.id}` : ""}`));
      }
    } catch (error) {
      throw pullError(ref, error, mask);
    }
    // What came with credentials is marked, so nobody without them is served it from here.
    if (auth) {
      const mark = credentialedPullMark(ref);
      const at = mark.lastIndexOf(":");
      await this.docker.getImage(ref).tag({ repo: mark.slice(0, at), tag: mark.slice(at + 1) });
    }
  }

  /** Creates and starts a container; answers its id. */
  async run(spec: ContainerCreateOptions): Promise<string> {
    const container = await this.docker.createContainer(spec);
    await container.start();
    return container.id;
  }

  async create(spec: ContainerCreateOptions): Promise<string> {
    return (await this.docker.createContainer(spec)).id;
  }

  async start(id: string): Promise<void> {
    await this.docker.getContainer(id).start();
  }

  /** SIGTERM, then SIGKILL after `graceSecs`. Stopping a stopped container is not an error. */
  async stop(id: string, graceSecs = 10): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: graceSecs });
    } catch (error) {
      if (statusOf(error) !== 304) throw error;
    }
  }

  /**
   * Removes the container (killing it if it runs) with its anonymous volumes, as `docker run
   * --rm` does: an image's `VOLUME` would otherwise leave one behind per container. Resolves once
   * it is gone, also when another caller was removing it; a missing container is not an error.
   */
  async remove(id: string): Promise<void> {
    const container = this.docker.getContainer(id);
    try {
      await container.remove({ force: true, v: true });
    } catch (error) {
      if (statusOf(error) === 404) return;
      if (statusOf(error) !== 409 || !/already in progress/.test(String(error))) throw error;
      // Someone else's removal: Docker's wait for "removed" answers when it is done.
      await container.wait({ condition: "removed" }).catch((waited: unknown) => {
        if (statusOf(waited) !== 404) throw waited;
      });
    }
  }

  async inspect(id: string): Promise<ContainerInspection> {
    const info = await this.docker.getContainer(id).inspect();
    return {
      id: info.Id,
      state: info.State.Status as ContainerStatus,
      exitCode: info.State.ExitCode,
      oomKilled: info.State.OOMKilled,
      startedAt: dockerTime(info.State.StartedAt),
      finishedAt: dockerTime(info.State.FinishedAt),
      restartCount: info.RestartCount,
      labels: info.Config.Labels ?? {},
      pid: info.State.Pid ?? 0,
    };
  }

  /** The container's output as lines, stdout and stderr told apart; readable after it exited. */
  async *logs(id: string, options: LogOptions = {}): AsyncGenerator<LogLine> {
    const container = this.docker.getContainer(id);
    const base = {
      stdout: true,
      stderr: true,
      ...(options.tail !== undefined ? { tail: options.tail } : {}),
      ...(options.since !== undefined ? { since: options.since } : {}),
    };
    if (options.follow) {
      const stream = (await container.logs({ ...base, follow: true })) as unknown as Readable;
      const stop = () => stream.destroy();
      options.signal?.addEventListener("abort", stop, { once: true });
      if (options.signal?.aborted) stop();
      try {
        yield* demultiplex(stream);
      } finally {
        options.signal?.removeEventListener("abort", stop);
        stream.destroy();
      }
      return;
    }
    const buffer = await container.logs({ ...base, follow: false });
    yield* demultiplex([buffer]);
  }

  /**
   * The image of `ref` on this engine: its labels, and the marks of a bot's credentialed pull
   * when it is there only by one (credentialed-pulls.ts); undefined when absent.
   */
  async image(
    ref: string,
  ): Promise<{ labels: Record<string, string>; credentialMarks?: string[] } | undefined> {
    try {
      const info = await this.docker.getImage(ref).inspect();
      const marks = pulledWithCredentials(info.RepoTags) ? credentialMarks(info.RepoTags) : undefined;
      return { labels: info.Config?.Labels ?? {}, ...(marks ? { credentialMarks: marks } : {}) };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** One sample of memory use and CPU, as `docker stats --no-stream` shows them. */
  async stats(id: string): Promise<ContainerStats> {
    const s = await this.docker.getContainer(id).stats({ stream: false });
    // What `docker stats` shows: usage less the inactive page cache (cgroup v1 and v2 names).
    const memory = (s.memory_stats.stats ?? {}) as Record<string, number | undefined>;
    const cache = memory.total_inactive_file ?? memory.inactive_file ?? 0;
    const memoryBytes = Math.max(0, (s.memory_stats.usage ?? 0) - cache);
    const cpuDelta = s.cpu_stats.cpu_usage.total_usage - (s.precpu_stats.cpu_usage?.total_usage ?? 0);
    const systemDelta = (s.cpu_stats.system_cpu_usage ?? 0) - (s.precpu_stats.system_cpu_usage ?? 0);
    const cpus = s.cpu_stats.online_cpus ?? s.cpu_stats.cpu_usage.percpu_usage?.length ?? 1;
    const cpuPercent = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * cpus * 100 : 0;
    let netRxBytes = 0;
    let netTxBytes = 0;
    for (const net of Object.values(s.networks ?? {})) {
      netRxBytes += net.rx_bytes ?? 0;
      netTxBytes += net.tx_bytes ?? 0;
    }
    const limit = s.memory_stats.limit;
    return {
      memoryBytes,
      cpuPercent,
      ...(typeof limit === "number" && limit > 0 ? { memoryLimitBytes: limit } : {}),
      netRxBytes,
      netTxBytes,
      pids: s.pids_stats?.current ?? 0,
    };
  }

  /**
   * Container start, die and oom events of containers carrying `label` (`key` or `key=value`),
   * from now on (or from `since`, Unix seconds, replaying what Docker kept: a watcher that opens
   * after a container started misses nothing), until the iteration is left or `signal` aborts.
   */
  async *events(options: {
    label: string;
    since?: number;
    signal?: AbortSignal;
  }): AsyncGenerator<ContainerEvent> {
    const stream = (await this.docker.getEvents({
      ...(options.since !== undefined ? { since: options.since } : {}),
      filters: { type: ["container"], event: ["start", "die", "oom"], label: [options.label] },
    })) as unknown as Readable;
    try {
      // Aborted while Docker's answer was on its way: the abort event has fired already, and
      // the watch would wait for the next event of the label, which may never come.
      if (options.signal?.aborted) return;
      for await (const message of jsonLines(stream, options.signal)) {
        const event = message as {
          Action: string;
          Actor: { ID: string; Attributes: Record<string, string> };
          timeNano: number;
        };
        if (event.Action !== "start" && event.Action !== "die" && event.Action !== "oom") continue;
        const { exitCode, ...labels } = event.Actor.Attributes;
        delete labels.image;
        delete labels.name;
        yield {
          action: event.Action,
          containerId: event.Actor.ID,
          ...(event.Action === "die" && exitCode !== undefined ? { exitCode: Number(exitCode) } : {}),
          labels,
          timeNano: event.timeNano,
        };
      }
    } finally {
      stream.destroy();
    }
  }

  /** Every container runyard manages, running or not: the basis of reconciliation. */
  async listManaged(): Promise<ManagedContainer[]> {
    const list = await this.listLabelled([`${managedLabel}=1`]);
    return list.map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? "").replace(/^\//, ""),
      image: c.Image,
      state: c.State,
      labels: c.Labels,
    }));
  }
}

/** One line of Docker's build or pull progress; `error` is a failure that came after a 200. */
type ProgressLine = {
  stream?: string;
  status?: string;
  id?: string;
  error?: string;
  errorDetail?: { message?: string };
};

/**
 * JSON objects of a newline-delimited JSON stream (Docker's build and event streams), until the
 * stream ends or `signal` aborts: a destroyed stream never ends the lines of its reader.
 */
async function* jsonLines(stream: Readable, signal?: AbortSignal): AsyncGenerator<unknown> {
  const lines = createInterface({
    input: stream,
    crlfDelay: Number.POSITIVE_INFINITY,
    ...(signal ? { signal } : {}),
  });
  try {
    for await (const line of lines) {
      if (line.trim() !== "") yield JSON.parse(line);
    }
  } finally {
    lines.close();
  }
}

function dockerTime(value: string): string | null {
  return !value || value.startsWith("0001-") ? null : value;
}

function statusOf(error: unknown): number | undefined {
  return (error as { statusCode?: number }).statusCode;
}
