/**
 * The scripted cluster's one node: runs each Pod as Docker containers (network `none` or
 * `host`), as a kubelet would: image (never pulled from a registry off this machine), command and
 * args with `$(VAR)` expansion, env with `valueFrom` and `envFrom` Secrets, volumes (`emptyDir`, a tmpfs for `medium: Memory`,
 * `persistentVolumeClaim` as a host folder the test names, `secret`) with `subPath`, runAsUser /
 * runAsGroup / fsGroup / supplementalGroups, runAsNonRoot, readOnlyRootFilesystem, capabilities,
 * allowPrivilegeEscalation, memory and CPU limits, `activeDeadlineSeconds`, graceful deletion;
 * and reports it as the API does (phases, conditions, containerStatuses with waiting reasons and
 * terminated exit codes and reasons). Faults (unschedulable, image pull failure, OOM, eviction)
 * are switched on by the server's fault API.
 */
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { ContainerCreateOptions } from "dockerode";
import { DockerEngine } from "../../src/exec/docker/docker-engine.js";
import { frames } from "../../src/exec/docker/docker-log-frames.js";
import { type Cluster, info, timestamp } from "./cluster.js";
import type { KubeObject } from "./objects.js";
import { memoryBytes, nanoCpus } from "./quantity.js";
import { badRequest } from "./status.js";

const pods = info("pods");
const secrets = info("secrets");

export interface KubeletOptions {
  /** Where pod folders (emptyDir, secret volumes) go. */
  root: string;
  /** Pods' network: `host` (they reach 127.0.0.1 services) unless a test asks for `none`. */
  network: "host" | "none";
  /** Labels every container gets, so a test's cleanup finds them. */
  containerLabels: Record<string, string>;
  nodeName: string;
}

/** Faults the kubelet acts on, set by the server's fault API. */
export interface KubeletFaults {
  /** New pods stay Pending with PodScheduled False, reason Unschedulable. */
  unschedulable: boolean;
  /** Images (exact references) whose pull fails whether or not they are on the node. */
  failingPulls: Set<string>;
  /** Between ErrImagePull and ImagePullBackOff, and between pull retries. */
  pullBackoffMs: number;
}

interface Container {
  name: string;
  image: string;
  command?: string[];
  args?: string[];
  workingDir?: string;
  env?: EnvVar[];
  envFrom?: {
    prefix?: string;
    secretRef?: { name: string; optional?: boolean };
    configMapRef?: { name: string };
  }[];
  volumeMounts?: { name: string; mountPath: string; subPath?: string; readOnly?: boolean }[];
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  securityContext?: SecurityContext;
  imagePullPolicy?: string;
}

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: {
    secretKeyRef?: { name: string; key: string; optional?: boolean };
    configMapKeyRef?: { name: string; key: string; optional?: boolean };
    fieldRef?: { fieldPath: string };
  };
}

interface SecurityContext {
  runAsUser?: number;
  runAsGroup?: number;
  runAsNonRoot?: boolean;
  readOnlyRootFilesystem?: boolean;
  allowPrivilegeEscalation?: boolean;
  privileged?: boolean;
  capabilities?: { add?: string[]; drop?: string[] };
  fsGroup?: number;
  supplementalGroups?: number[];
}

interface Volume {
  name: string;
  emptyDir?: { medium?: string; sizeLimit?: string };
  persistentVolumeClaim?: { claimName: string; readOnly?: boolean };
  secret?: {
    secretName: string;
    defaultMode?: number;
    items?: { key: string; path: string; mode?: number }[];
    optional?: boolean;
  };
}

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: Volume[];
  securityContext?: SecurityContext;
  activeDeadlineSeconds?: number;
  terminationGracePeriodSeconds?: number;
  hostNetwork?: boolean;
}

type State =
  | { waiting: { reason: string; message?: string } }
  | { running: { startedAt: string } }
  | {
      terminated: {
        exitCode: number;
        reason: string;
        message?: string;
        startedAt?: string;
        finishedAt: string;
        containerID?: string;
      };
    };

interface ContainerStatus {
  name: string;
  state: State;
  lastState: Record<string, never>;
  ready: boolean;
  restartCount: number;
  image: string;
  imageID: string;
  containerID?: string;
  started: boolean;
}

/** A condition that means "keep trying": a missing Secret, a failing pull, a fault. */
class Waiting extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
  }
}

class Stopped extends Error {}

/** One pod's life on the node. */
class PodWorker {
  readonly containers = new Map<string, string>();
  /** Why the pod was stopped from outside (deletion, deadline, eviction, OOM fault). */
  stopReason?: { reason?: string; message?: string; deleting: boolean };
  readonly oomKilled = new Set<string>();
  /** Whether the deleted pod was handed back to the API to be removed. */
  private finalized = false;
  private readonly statuses = new Map<string, ContainerStatus>();
  private readonly initStatuses = new Map<string, ContainerStatus>();
  private deadlineTimer?: NodeJS.Timeout;
  private stopping?: Promise<void>;
  private wake: () => void = () => {};

  constructor(
    private readonly kubelet: Kubelet,
    private pod: KubeObject,
  ) {}

  get uid(): string {
    return this.pod.metadata.uid;
  }
  get namespace(): string {
    return this.pod.metadata.namespace!;
  }
  get name(): string {
    return this.pod.metadata.name;
  }
  private get spec(): PodSpec {
    return this.pod.spec as PodSpec;
  }
  get dir(): string {
    return join(this.kubelet.options.root, "pods", this.uid);
  }

  statusOf(container: string): ContainerStatus | undefined {
    return this.statuses.get(container) ?? this.initStatuses.get(container);
  }

  containerNames(): string[] {
    return this.spec.containers.map((c) => c.name);
  }

  /** Wakes a worker waiting to retry (a fault changed). */
  poke(): void {
    this.wake();
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private check(): void {
    if (this.stopReason) throw new Stopped();
  }

  private update(change: (status: Record<string, unknown>, pod: KubeObject) => void): void {
    const updated = this.kubelet.cluster.store.update(pods, this.namespace, this.name, (o) => {
      const status = (o.status ?? {}) as Record<string, unknown>;
      change(status, o);
      o.status = status;
    });
    if (updated) this.pod = updated;
  }

  private writeStatuses(extra: (status: Record<string, unknown>) => void = () => {}): void {
    this.update((status) => {
      status.containerStatuses = [...this.statuses.values()];
      if (this.initStatuses.size > 0) status.initContainerStatuses = [...this.initStatuses.values()];
      extra(status);
    });
  }

  private blank(container: Container, reason: string, message?: string): ContainerStatus {
    return {
      name: container.name,
      state: { waiting: { reason, ...(message ? { message } : {}) } },
      lastState: {},
      ready: false,
      restartCount: 0,
      image: container.image,
      imageID: "",
      started: false,
    };
  }

  async run(): Promise<void> {
    try {
      await this.schedule();
      const startedAt = timestamp();
      for (const c of this.spec.initContainers ?? [])
        this.initStatuses.set(c.name, this.blank(c, "PodInitializing"));
      for (const c of this.spec.containers) this.statuses.set(c.name, this.blank(c, "ContainerCreating"));
      this.writeStatuses((status) => {
        status.phase = "Pending";
        status.startTime = startedAt;
        status.hostIP = "127.0.0.1";
        status.hostIPs = [{ ip: "127.0.0.1" }];
        status.qosClass = this.qosClass();
        status.conditions = [
          {
            type: "PodReadyToStartContainers",
            status: "True",
            lastProbeTime: null,
            lastTransitionTime: startedAt,
          },
          {
            type: "Initialized",
            status: this.spec.initContainers?.length ? "False" : "True",
            lastProbeTime: null,
            lastTransitionTime: startedAt,
          },
          {
            type: "Ready",
            status: "False",
            lastProbeTime: null,
            lastTransitionTime: startedAt,
            reason: "ContainersNotReady",
          },
          {
            type: "ContainersReady",
            status: "False",
            lastProbeTime: null,
            lastTransitionTime: startedAt,
            reason: "ContainersNotReady",
          },
          { type: "PodScheduled", status: "True", lastProbeTime: null, lastTransitionTime: startedAt },
        ];
      });
      const deadline = this.spec.activeDeadlineSeconds;
      if (deadline !== undefined) {
        this.deadlineTimer = setTimeout(
          () =>
            void this.stop({
              reason: "DeadlineExceeded",
              message: "Pod was active on the node longer than the specified deadline",
              deleting: false,
            }),
          deadline * 1000,
        );
      }
      const mounts = await this.prepareVolumes();
      for (const container of this.spec.initContainers ?? []) {
        const code = await this.runContainer(container, mounts, this.initStatuses, true);
        if (code !== 0) return this.finish("Failed");
      }
      if (this.spec.initContainers?.length) this.setCondition("Initialized", "True");
      const codes = await Promise.all(
        this.spec.containers.map((container) => this.runContainer(container, mounts, this.statuses, false)),
      );
      this.finish(codes.every((code) => code === 0) ? "Succeeded" : "Failed");
    } catch (error) {
      if (!(error instanceof Stopped)) {
        process.stderr.write(`scripted kubelet: pod ${this.namespace}/${this.name}: ${String(error)}\n`);
      }
      this.finish("Failed");
    } finally {
      clearTimeout(this.deadlineTimer);
    }
  }

  private qosClass(): string {
    const all = this.spec.containers;
    const hasAny = all.some((c) => c.resources?.limits || c.resources?.requests);
    if (!hasAny) return "BestEffort";
    const guaranteed = all.every(
      (c) =>
        c.resources?.limits?.memory !== undefined &&
        c.resources?.limits?.cpu !== undefined &&
        (c.resources.requests?.memory ?? c.resources.limits.memory) === c.resources.limits.memory &&
        (c.resources.requests?.cpu ?? c.resources.limits.cpu) === c.resources.limits.cpu,
    );
    return guaranteed ? "Guaranteed" : "Burstable";
  }

  private setCondition(type: string, value: "True" | "False", reason?: string): void {
    this.update((status) => {
      const conditions = (status.conditions ?? []) as { type: string; status: string; reason?: string }[];
      status.conditions = conditions.map((c) =>
        c.type === type
          ? { ...c, status: value, lastTransitionTime: timestamp(), ...(reason ? { reason } : {}) }
          : c,
      );
      if (value === "True") {
        for (const c of status.conditions as { type: string; reason?: string }[])
          if (c.type === type) delete c.reason;
      }
    });
  }

  /** Waits while the node cannot take the pod (the unschedulable fault, a missing claim). */
  private async schedule(): Promise<void> {
    for (;;) {
      this.check();
      const missingClaim = (this.spec.volumes ?? [])
        .map((v) => v.persistentVolumeClaim?.claimName)
        .find((claim) => claim !== undefined && this.kubelet.claimPath(this.namespace, claim) === undefined);
      const reason = this.kubelet.faults.unschedulable
        ? "0/1 nodes are available: 1 Insufficient memory. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        : missingClaim
          ? `0/1 nodes are available: persistentvolumeclaim "${missingClaim}" not found. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.`
          : undefined;
      if (!reason) break;
      this.update((status) => {
        status.phase = "Pending";
        status.qosClass = this.qosClass();
        status.conditions = [
          {
            type: "PodScheduled",
            status: "False",
            lastProbeTime: null,
            lastTransitionTime: timestamp(),
            reason: "Unschedulable",
            message: reason,
          },
        ];
      });
      await this.pause(500);
    }
    this.update((_status, o) => {
      (o.spec as Record<string, unknown>).nodeName = this.kubelet.options.nodeName;
    });
  }

  private securityOf(container: Container): SecurityContext {
    return { ...this.spec.securityContext, ...container.securityContext };
  }

  /** Host folders of the pod's volumes, by volume name. */
  private async prepareVolumes(): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    const fsGroup = this.spec.securityContext?.fsGroup;
    for (const volume of this.spec.volumes ?? []) {
      if (volume.emptyDir) {
        const dir = join(this.dir, "volumes", volume.name);
        mkdirSync(dir, { recursive: true });
        chmodSync(dir, 0o777);
        if (fsGroup !== undefined) {
          chownSync(dir, 0, fsGroup);
          chmodSync(dir, 0o2777);
        }
        out.set(volume.name, dir);
      } else if (volume.persistentVolumeClaim) {
        const dir = this.kubelet.claimPath(this.namespace, volume.persistentVolumeClaim.claimName)!;
        // The kubelet makes a claim's files the pod's fsGroup's, writable by it (fsGroupChangePolicy Always).
        if (fsGroup !== undefined) ownByGroup(dir, fsGroup);
        out.set(volume.name, dir);
      } else if (volume.secret) {
        for (;;) {
          this.check();
          const secret = this.kubelet.cluster.store.get(secrets, this.namespace, volume.secret.secretName);
          if (secret || volume.secret.optional) {
            const dir = join(this.dir, "secrets", volume.name);
            mkdirSync(dir, { recursive: true });
            const data = (secret?.data ?? {}) as Record<string, string>;
            const items =
              volume.secret.items ?? Object.keys(data).map((key) => ({ key, path: key, mode: undefined }));
            for (const item of items) {
              const file = join(dir, item.path);
              mkdirSync(join(file, ".."), { recursive: true });
              writeFileSync(file, Buffer.from(data[item.key] ?? "", "base64"));
              chmodSync(file, item.mode ?? volume.secret.defaultMode ?? 0o644);
              if (fsGroup !== undefined) chownSync(file, 0, fsGroup);
            }
            out.set(volume.name, dir);
            break;
          }
          for (const c of this.spec.containers) {
            this.statuses.set(c.name, this.blank(c, "ContainerCreating"));
          }
          this.writeStatuses();
          await this.pause(500);
        }
      } else {
        throw new Error(
          `volume ${volume.name}: only emptyDir, persistentVolumeClaim and secret volumes are emulated`,
        );
      }
    }
    return out;
  }

  private async ensureImage(container: Container, statuses: Map<string, ContainerStatus>): Promise<void> {
    let backoff = this.kubelet.faults.pullBackoffMs;
    for (;;) {
      this.check();
      const failure = await this.kubelet.pullFailure(container);
      if (!failure) return;
      statuses.set(container.name, this.blank(container, failure.reason, failure.message));
      this.writeStatuses();
      if (failure.reason === "ErrImageNeverPull") return this.waitForever();
      await this.pause(this.kubelet.faults.pullBackoffMs);
      this.check();
      statuses.set(
        container.name,
        this.blank(container, "ImagePullBackOff", `Back-off pulling image "${container.image}"`),
      );
      this.writeStatuses();
      await this.pause(backoff);
      backoff = Math.min(backoff * 2, 10_000);
    }
  }

  private async waitForever(): Promise<never> {
    for (;;) {
      this.check();
      await this.pause(1000);
    }
  }

  /** The container's env, as the kubelet builds it; Waiting while a Secret it names is missing. */
  private environment(container: Container): Map<string, string> {
    const env = new Map<string, string>();
    const store = this.kubelet.cluster.store;
    const secret = (name: string) => store.get(secrets, this.namespace, name);
    for (const source of container.envFrom ?? []) {
      if (source.configMapRef) {
        throw new Waiting("CreateContainerConfigError", `configmap "${source.configMapRef.name}" not found`);
      }
      if (!source.secretRef) continue;
      const found = secret(source.secretRef.name);
      if (!found) {
        if (source.secretRef.optional) continue;
        throw new Waiting("CreateContainerConfigError", `secret "${source.secretRef.name}" not found`);
      }
      for (const [key, value] of Object.entries((found.data ?? {}) as Record<string, string>)) {
        env.set(`${source.prefix ?? ""}${key}`, Buffer.from(value, "base64").toString());
      }
    }
    for (const variable of container.env ?? []) {
      const from = variable.valueFrom;
      if (!from) {
        env.set(variable.name, expand(variable.value ?? "", env));
      } else if (from.secretKeyRef) {
        const ref = from.secretKeyRef;
        const found = secret(ref.name);
        const data = (found?.data ?? {}) as Record<string, string>;
        if (!found || !(ref.key in data)) {
          if (ref.optional) continue;
          throw new Waiting(
            "CreateContainerConfigError",
            found
              ? `couldn't find key ${ref.key} in Secret ${this.namespace}/${ref.name}`
              : `secret "${ref.name}" not found`,
          );
        }
        env.set(variable.name, Buffer.from(data[ref.key]!, "base64").toString());
      } else if (from.configMapKeyRef) {
        if (from.configMapKeyRef.optional) continue;
        throw new Waiting("CreateContainerConfigError", `configmap "${from.configMapKeyRef.name}" not found`);
      } else if (from.fieldRef) {
        env.set(variable.name, this.field(from.fieldRef.fieldPath));
      }
    }
    return env;
  }

  private field(path: string): string {
    const meta = this.pod.metadata;
    const label = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
    if (label) return meta[label[1] as "labels" | "annotations"]?.[label[2]!] ?? "";
    const spec = this.pod.spec as Record<string, string>;
    const values: Record<string, string | undefined> = {
      "metadata.name": meta.name,
      "metadata.namespace": meta.namespace,
      "metadata.uid": meta.uid,
      "spec.nodeName": spec.nodeName,
      "spec.serviceAccountName": spec.serviceAccountName,
      "status.hostIP": "127.0.0.1",
      "status.podIP": "127.0.0.1",
    };
    return values[path] ?? "";
  }

  private async createSpec(
    container: Container,
    mounts: Map<string, string>,
  ): Promise<ContainerCreateOptions> {
    const security = this.securityOf(container);
    const env = this.environment(container);
    const engine = this.kubelet.engine;
    const imageConfig = (await engine.docker.getImage(container.image).inspect()).Config as {
      User?: string;
    };
    const imageUser = imageConfig.User ?? "";
    if (security.runAsNonRoot) {
      const uid =
        security.runAsUser ?? (/^\d+/.test(imageUser) ? Number(imageUser.split(":")[0]) : undefined);
      if (uid === undefined && imageUser !== "" && !/^root(:|$)/.test(imageUser)) {
        throw new Waiting(
          "CreateContainerConfigError",
          `container has runAsNonRoot and image has non-numeric user (${imageUser}), cannot verify user is non-root (pod: "${this.name}_${this.namespace}(${this.uid})", container: ${container.name})`,
        );
      }
      if (uid === undefined || uid === 0) {
        throw new Waiting(
          "CreateContainerConfigError",
          `container has runAsNonRoot and image will run as root (pod: "${this.name}_${this.namespace}(${this.uid})", container: ${container.name})`,
        );
      }
    }
    let user: string | undefined;
    if (security.runAsUser !== undefined || security.runAsGroup !== undefined) {
      const uid = security.runAsUser ?? (imageUser.split(":")[0] || "0");
      user = security.runAsGroup !== undefined ? `${uid}:${security.runAsGroup}` : String(uid);
    }
    const binds: string[] = [];
    const tmpfs: Record<string, string> = {};
    for (const mount of container.volumeMounts ?? []) {
      // A `medium: Memory` emptyDir is a tmpfs of its sizeLimit, as the kubelet mounts it (one
      // per container here: the containers of a pod do not share it).
      const inMemory = this.spec.volumes?.find((v) => v.name === mount.name)?.emptyDir;
      if (inMemory?.medium === "Memory" && !mount.subPath) {
        const size = inMemory.sizeLimit === undefined ? undefined : memoryBytes(inMemory.sizeLimit);
        // Docker's own tmpfs defaults (noexec) are not the kubelet's.
        tmpfs[mount.mountPath] = `rw,exec,mode=0777${size ? `,size=${size}` : ""}`;
        continue;
      }
      let host = mounts.get(mount.name)!;
      if (mount.subPath) {
        host = join(host, mount.subPath);
        if (!existsSync(host)) mkdirSync(host, { recursive: true });
      }
      binds.push(`${host}:${mount.mountPath}${mount.readOnly ? ":ro" : ""}`);
    }
    const limits = container.resources?.limits ?? {};
    const memory = limits.memory !== undefined ? memoryBytes(limits.memory) : undefined;
    const cpus = limits.cpu !== undefined ? nanoCpus(limits.cpu) : undefined;
    const groups = [
      ...(this.spec.securityContext?.fsGroup !== undefined ? [this.spec.securityContext.fsGroup] : []),
      ...(this.spec.securityContext?.supplementalGroups ?? []),
    ].map(String);
    const hostNetwork = this.spec.hostNetwork === true || this.kubelet.options.network === "host";
    const expanded = (list: string[] | undefined) => list?.map((item) => expand(item, env));
    return {
      name: `k8s_${container.name}_${this.name}_${this.namespace}_${this.uid.slice(0, 8)}`,
      Image: container.image,
      ...(container.command ? { Entrypoint: expanded(container.command) } : {}),
      ...(container.args ? { Cmd: expanded(container.args) } : {}),
      ...(container.workingDir ? { WorkingDir: container.workingDir } : {}),
      ...(user ? { User: user } : {}),
      ...(hostNetwork ? {} : { Hostname: this.name }),
      Env: [...env].map(([key, value]) => `${key}=${value}`),
      Labels: {
        ...this.kubelet.options.containerLabels,
        "io.kubernetes.pod.name": this.name,
        "io.kubernetes.pod.namespace": this.namespace,
        "io.kubernetes.pod.uid": this.uid,
        "io.kubernetes.container.name": container.name,
      },
      HostConfig: {
        NetworkMode: hostNetwork ? "host" : "none",
        Binds: binds,
        ...(Object.keys(tmpfs).length > 0 ? { Tmpfs: tmpfs } : {}),
        ReadonlyRootfs: security.readOnlyRootFilesystem === true,
        CapDrop: security.capabilities?.drop ?? [],
        CapAdd: security.capabilities?.add ?? [],
        Privileged: security.privileged === true,
        SecurityOpt: security.allowPrivilegeEscalation === false ? ["no-new-privileges"] : [],
        ...(groups.length > 0 ? { GroupAdd: groups } : {}),
        ...(memory !== undefined ? { Memory: memory, MemorySwap: memory } : {}),
        ...(cpus !== undefined ? { NanoCpus: cpus } : {}),
      },
    };
  }

  /** Runs one container to its end; answers its exit code. */
  private async runContainer(
    container: Container,
    mounts: Map<string, string>,
    statuses: Map<string, ContainerStatus>,
    init: boolean,
  ): Promise<number> {
    await this.ensureImage(container, statuses);
    let spec: ContainerCreateOptions;
    for (;;) {
      this.check();
      try {
        spec = await this.createSpec(container, mounts);
        break;
      } catch (error) {
        if (!(error instanceof Waiting)) throw error;
        statuses.set(container.name, this.blank(container, error.reason, error.message));
        this.writeStatuses();
        await this.pause(500);
      }
    }
    this.check();
    const engine = this.kubelet.engine;
    // Read before the container is made: a stop that came while this waited (a pod deleted as it
    // starts) must be seen by the check below, not miss a container started after it.
    const image = await engine.docker.getImage(container.image).inspect();
    const id = await engine.create(spec);
    this.containers.set(container.name, id);
    if (this.stopReason) {
      await engine.remove(id);
      this.containers.delete(container.name);
      throw new Stopped();
    }
    const containerID = `docker://${id}`;
    const started = {
      ...statuses.get(container.name)!,
      containerID,
      imageID: `docker-pullable://${image.Id}`,
    };
    try {
      await engine.start(id);
      // Stopped while it started: its stop found nothing running yet, so it is stopped now.
      if (this.stopReason) await engine.stop(id, 0).catch(() => {});
    } catch (error) {
      statuses.set(container.name, {
        ...started,
        state: {
          terminated: {
            exitCode: 128,
            reason: "StartError",
            message: String(error),
            finishedAt: timestamp(),
            containerID,
          },
        },
      });
      this.writeStatuses();
      return 128;
    }
    const startedAt = timestamp();
    statuses.set(container.name, {
      ...started,
      state: { running: { startedAt } },
      ready: !init,
      started: true,
    });
    const allRunning = () => [...this.statuses.values()].every((s) => "running" in s.state);
    this.writeStatuses((status) => {
      if (!init && allRunning()) {
        status.phase = "Running";
        status.podIP = "127.0.0.1";
        status.podIPs = [{ ip: "127.0.0.1" }];
      }
    });
    if (!init && allRunning()) {
      this.setCondition("ContainersReady", "True");
      this.setCondition("Ready", "True");
    }
    const { StatusCode } = (await engine.docker.getContainer(id).wait()) as { StatusCode: number };
    const inspection = await engine.inspect(id);
    const oom = inspection.oomKilled || this.oomKilled.has(container.name);
    const exitCode = oom && StatusCode === 0 ? 137 : StatusCode;
    const reason = oom ? "OOMKilled" : exitCode === 0 ? "Completed" : "Error";
    statuses.set(container.name, {
      ...started,
      ready: false,
      started: false,
      state: {
        terminated: {
          exitCode,
          reason,
          startedAt,
          finishedAt: inspection.finishedAt ? timestamp(Date.parse(inspection.finishedAt)) : timestamp(),
          containerID,
        },
      },
    });
    this.writeStatuses();
    if (!init) {
      this.setCondition("ContainersReady", "False", "ContainersNotReady");
      this.setCondition("Ready", "False", "ContainersNotReady");
    }
    return exitCode;
  }

  private finish(phase: "Succeeded" | "Failed"): void {
    const stop = this.stopReason;
    this.update((status) => {
      status.phase = phase;
      if (stop?.reason) {
        status.reason = stop.reason;
        status.message = stop.message;
      }
      if (stop?.reason === "Evicted") {
        const conditions = (status.conditions ?? []) as unknown[];
        conditions.push({
          type: "DisruptionTarget",
          status: "True",
          reason: "TerminationByKubelet",
          message: stop.message,
          lastProbeTime: null,
          lastTransitionTime: timestamp(),
        });
        status.conditions = conditions;
      }
    });
  }

  /**
   * Stops the pod from outside: its containers get SIGTERM, then SIGKILL after the grace period.
   * A deletion then removes the pod; a deadline or an eviction leaves it Failed with its reason.
   */
  stop(why: { reason?: string; message?: string; deleting: boolean; graceSeconds?: number }): Promise<void> {
    if (this.stopping) {
      if (why.deleting && this.stopReason && !this.stopReason.deleting) {
        // Deleted after it was stopped (an evicted pod, then its Job): once stopped, it goes.
        this.stopReason.deleting = true;
        this.stopping = this.stopping.then(async () => {
          if (this.finalized) return;
          await this.waitTerminal();
          this.finalized = true;
          this.kubelet.cluster.finalizePod(this.namespace, this.name);
        });
      }
      return this.stopping;
    }
    this.stopReason = why;
    this.wake();
    const grace = why.graceSeconds ?? this.spec.terminationGracePeriodSeconds ?? 30;
    this.stopping = (async () => {
      await Promise.all(
        [...this.containers.values()].map((id) => this.kubelet.engine.stop(id, grace).catch(() => {})),
      );
      // Containers not started yet are never started (check() throws Stopped); let run() see that.
      await new Promise((resolve) => setImmediate(resolve));
      const current = this.kubelet.cluster.store.get(pods, this.namespace, this.name);
      const terminal = ["Succeeded", "Failed"].includes(
        (current?.status as { phase?: string } | undefined)?.phase ?? "",
      );
      if (!terminal && current) {
        if (this.containers.size === 0) {
          for (const [name, s] of this.statuses) this.statuses.set(name, { ...s, ready: false });
        }
        // run() writes the containers' terminated states as they exit; a pod stopped before any ran fails here.
        if (this.containers.size === 0) this.finish("Failed");
      }
      if (this.stopReason?.deleting) {
        await this.waitTerminal();
        this.finalized = true;
        this.kubelet.cluster.finalizePod(this.namespace, this.name);
      }
    })();
    return this.stopping;
  }

  private async waitTerminal(): Promise<void> {
    for (let i = 0; i < 600; i++) {
      const current = this.kubelet.cluster.store.get(pods, this.namespace, this.name);
      if (
        !current ||
        ["Succeeded", "Failed"].includes((current.status as { phase?: string } | undefined)?.phase ?? "")
      ) {
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async removeContainers(): Promise<void> {
    await Promise.all(
      [...this.containers.values()].map((id) => this.kubelet.engine.remove(id).catch(() => {})),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** `$(VAR)` in a value, command or args: the variable's value when defined, `$$(VAR)` a literal. */
function expand(text: string, env: Map<string, string>): string {
  return text.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (match, name: string | undefined) => {
    if (match === "$$") return "$";
    return name !== undefined && env.has(name) ? env.get(name)! : match;
  });
}

/** Group `gid` owns every file under `dir`, with group read-write and setgid folders (as fsGroup does). */
function ownByGroup(dir: string, gid: number): void {
  const visit = (path: string): void => {
    const stat = lstatSync(path);
    if (stat.isSymbolicLink()) return;
    chownSync(path, stat.uid, gid);
    if (stat.isDirectory()) {
      chmodSync(path, (stat.mode & 0o7777) | 0o2070);
      for (const entry of readdirSync(path)) visit(join(path, entry));
    } else {
      chmodSync(path, (stat.mode & 0o7777) | 0o060);
    }
  };
  visit(dir);
}

export class Kubelet {
  readonly engine = new DockerEngine();
  readonly faults: KubeletFaults = { unschedulable: false, failingPulls: new Set(), pullBackoffMs: 1000 };
  readonly workers = new Map<string, PodWorker>();
  /** `namespace/claim` or `claim` -> host folder. */
  readonly claims = new Map<string, string>();

  constructor(
    readonly cluster: Cluster,
    readonly options: KubeletOptions,
  ) {
    cluster.store.listeners.push((change) => {
      if (change.object.kind !== "Pod") return;
      const pod = change.object;
      const worker = this.workers.get(pod.metadata.uid);
      if (change.type === "ADDED" && !worker) {
        const fresh = new PodWorker(this, pod);
        this.workers.set(pod.metadata.uid, fresh);
        void fresh.run();
      } else if (change.type === "MODIFIED" && pod.metadata.deletionTimestamp && worker) {
        void worker.stop({ deleting: true, graceSeconds: pod.metadata.deletionGracePeriodSeconds });
      } else if (change.type === "DELETED" && worker) {
        this.workers.delete(pod.metadata.uid);
        void worker.stop({ deleting: false, graceSeconds: 0 }).then(() => worker.removeContainers());
      }
    });
    cluster.events.on("faults", () => {
      for (const worker of this.workers.values()) worker.poke();
    });
  }

  claimPath(namespace: string, claim: string): string | undefined {
    return this.claims.get(`${namespace}/${claim}`) ?? this.claims.get(claim);
  }

  /** Why `container`'s image cannot be had, or undefined when it is on the node. */
  async pullFailure(container: Container): Promise<{ reason: string; message: string } | undefined> {
    const image = container.image;
    if (this.faults.failingPulls.has(image)) {
      return {
        reason: "ErrImagePull",
        message: `failed to pull and unpack image "${image}": failed to resolve reference "${image}": pull access denied, repository does not exist or may require authorization`,
      };
    }
    const present = await this.engine.docker
      .getImage(image)
      .inspect()
      .then(
        () => true,
        () => false,
      );
    if (present && container.imagePullPolicy !== "Always") return undefined;
    if (!present && container.imagePullPolicy === "Never") {
      return {
        reason: "ErrImageNeverPull",
        message: `Container image "${image}" is not present with pull policy of Never`,
      };
    }
    // Only registries on this machine can be reached; any other pull fails as an unreachable one does.
    const registry = image.split("/")[0]!;
    const local = image.includes("/") && /^(localhost|127\.0\.0\.1)(:\d+)?$/.test(registry);
    if (local) {
      try {
        await this.engine.pull(image);
        return undefined;
      } catch (error) {
        return {
          reason: "ErrImagePull",
          message: `failed to pull and unpack image "${image}": ${(error as Error).message}`,
        };
      }
    }
    if (present) return undefined;
    return {
      reason: "ErrImagePull",
      message: `failed to pull and unpack image "${image}": failed to resolve reference "${image}": the scripted cluster pulls only from registries on 127.0.0.1`,
    };
  }

  private workerOf(namespace: string, name: string): PodWorker | undefined {
    return [...this.workers.values()].find((w) => w.namespace === namespace && w.name === name);
  }

  /** Stops a running pod's containers and fails it with `reason` (Evicted, ...). */
  async fail(namespace: string, name: string, reason: string, message: string): Promise<void> {
    const worker = this.workerOf(namespace, name);
    if (!worker) throw new Error(`no pod ${namespace}/${name} on the node`);
    await worker.stop({ reason, message, deleting: false, graceSeconds: 0 });
  }

  /** Kills a container as the kernel's OOM killer would: its status says OOMKilled, exit 137. */
  async oomKill(namespace: string, name: string, container?: string): Promise<void> {
    const worker = this.workerOf(namespace, name);
    if (!worker) throw new Error(`no pod ${namespace}/${name} on the node`);
    const target = container ?? worker.containerNames()[0]!;
    const id = worker.containers.get(target);
    if (!id) throw new Error(`container ${target} of pod ${namespace}/${name} is not running`);
    worker.oomKilled.add(target);
    await this.engine.docker
      .getContainer(id)
      .kill({ signal: "SIGKILL" })
      .catch(() => {});
  }

  /**
   * The container's output as `pods/log` serves it (stdout and stderr as written). A container
   * not started yet is a 400, as the API answers it.
   */
  async logs(
    pod: KubeObject,
    container: string | undefined,
    options: { follow: boolean; tailLines?: number; timestamps: boolean },
  ): Promise<Readable | Buffer> {
    const worker = this.workers.get(pod.metadata.uid);
    const names = ((pod.spec as PodSpec).containers ?? []).map((c) => c.name);
    const initNames = ((pod.spec as PodSpec).initContainers ?? []).map((c) => c.name);
    if (container === undefined) {
      if (names.length !== 1) {
        throw badRequest(
          `a container name must be specified for pod ${pod.metadata.name}, choose one of: [${names.join(" ")}]${initNames.length ? ` or one of the init containers: [${initNames.join(" ")}]` : ""}`,
        );
      }
      container = names[0]!;
    }
    if (!names.includes(container) && !initNames.includes(container)) {
      throw badRequest(`container ${container} is not valid for pod ${pod.metadata.name}`);
    }
    const id = worker?.containers.get(container);
    if (!worker || !id) {
      const waiting = worker?.statusOf(container)?.state;
      const reason = waiting && "waiting" in waiting ? waiting.waiting.reason : "ContainerCreating";
      if (reason === "ErrImagePull" || reason === "ImagePullBackOff") {
        throw badRequest(
          `container "${container}" in pod "${pod.metadata.name}" is waiting to start: trying and failing to pull image`,
        );
      }
      if (reason === "CreateContainerConfigError") {
        throw badRequest(
          `container "${container}" in pod "${pod.metadata.name}" is waiting to start: CreateContainerConfigError`,
        );
      }
      throw badRequest(
        `container "${container}" in pod "${pod.metadata.name}" is waiting to start: ${reason}`,
      );
    }
    const base = {
      stdout: true,
      stderr: true,
      timestamps: options.timestamps,
      ...(options.tailLines !== undefined ? { tail: options.tailLines } : {}),
    };
    const handle = this.engine.docker.getContainer(id);
    if (options.follow) {
      const stream = (await handle.logs({ ...base, follow: true })) as unknown as Readable;
      return stream;
    }
    const buffer = (await handle.logs({ ...base, follow: false })) as unknown as Buffer;
    const parts: Buffer[] = [];
    for await (const frame of frames([buffer])) parts.push(frame.data);
    return Buffer.concat(parts);
  }

  async close(): Promise<void> {
    const workers = [...this.workers.values()];
    this.workers.clear();
    await Promise.all(
      workers.map((w) => w.stop({ deleting: false, graceSeconds: 0 }).then(() => w.removeContainers())),
    );
  }
}
