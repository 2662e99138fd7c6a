/**
 * A step attempt as Kubernetes manifests (docs/scale.md, "The Kubernetes executor"): a `batch/v1`
 * Job whose one pod runs every command through a shell driver, and a Secret it owns with the env,
 * files and driver. The Job's spec holds no env value: whoever may read Jobs or pods in the
 * namespace sees names only. step-executor.ts creates, watches and deletes them.
 */
import { createHash } from "node:crypto";
import { hardenedJob, kubeLabels } from "./job-objects.js";
import { stepDriverScript } from "./step-driver.js";

/** Where the Secret's files are mounted in the pod (read-only). */
export const stepInputDir = "/runyard/in";
/** An emptyDir the step writes `$RUNYARD_OUTPUT` into; the driver hands it back on exit. */
export const stepOutputDir = "/runyard/out";
export const stepOutputPath = `${stepOutputDir}/output`;
/** Where a step works when it names no cwd: an emptyDir of its own. */
export const defaultStepWorkDir = "/work";
/** The uid:gid a step's pod runs as (nobody on Debian and busybox): never root. */
export const stepUser = 65534;

/** A Secret holds at most 1 MiB (its data, base64 aside). */
export const maxSecretBytes = 1024 * 1024;

export interface StepJobInput {
  /** The Job's and its Secret's name (a DNS label, see `stepJobName`). */
  name: string;
  namespace: string;
  image: string;
  /** Plain ids; a value Kubernetes would refuse as a label is hashed there and kept whole in an annotation. */
  owner: { runId: string; step: string; attempt: number; runnerId: string; install?: string };
  /** The attempt's mark, that starts the driver's trailer in the log (step-trailer.ts). */
  mark: string;
  /** Each command's argv, run one after the other until one fails (cmd.run's lines, or shell.run's one). */
  commands: string[][];
  /** The attempt's whole environment, `$RUNYARD_OUTPUT` included. */
  env: Record<string, string>;
  /** Files the commands read, by name (shell.run's script): mounted under `stepInputDir`. */
  files: Record<string, string>;
  /** The step's cwd in the image; absent: an emptyDir at `defaultStepWorkDir`. */
  cwd?: string;
  /** The backstop when the runner is gone: the step's timeout plus a margin (the runner's own timer comes first). */
  activeDeadlineSeconds?: number;
  killGraceMs: number;
  limits?: { memoryBytes?: number; cpus?: number };
  /** Finished Jobs the runner did not delete go after this long. */
  ttlSecondsAfterFinished?: number;
}

export interface StepJobManifests {
  job: KubeObject;
  /**
   * Created right after the Job, with `ownerReferences` naming it (`ownedBy` of job-objects.ts): the pod waits for
   * its volume until it exists, and the garbage collector deletes it with the Job.
   */
  secret: KubeObject;
  /** Where each file of `StepJobInput.files` is in the pod. */
  filePaths: Record<string, string>;
}

/** A manifest as the API takes it: plain JSON. */
export type KubeObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; [field: string]: unknown };
  [field: string]: unknown;
};

/** A fresh name for an attempt's Job: `runyard-step-` and 12 hex digits, a valid DNS label. */
export function stepJobName(random: string): string {
  return `runyard-step-${random}`;
}

/**
 * Why a variable cannot go to a step's pod: the driver exports it by name, so it must be a name
 * the shell takes (letters, digits and `_`, not starting with a digit). Undefined when it can.
 */
export function envNameProblem(name: string): string | undefined {
  return /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && name.length <= 200
    ? undefined
    : `the variable name ${JSON.stringify(name.slice(0, 60))} cannot be exported by a shell`;
}

/** The Job and Secret of one attempt; the Secret's size is checked by the caller. */
export function stepJobManifests(input: StepJobInput): StepJobManifests {
  const labels = {
    [kubeLabels.component]: "step",
    [kubeLabels.job]: input.name,
    [kubeLabels.runId]: labelValue(input.owner.runId),
    [kubeLabels.step]: labelValue(input.owner.step),
    [kubeLabels.attempt]: String(input.owner.attempt),
    [kubeLabels.runnerId]: labelValue(input.owner.runnerId),
    ...(input.owner.install !== undefined ? { [kubeLabels.install]: labelValue(input.owner.install) } : {}),
  };
  const annotations = {
    [kubeLabels.runId]: input.owner.runId,
    [kubeLabels.step]: input.owner.step,
    [kubeLabels.runnerId]: input.owner.runnerId,
    ...(input.owner.install !== undefined ? { [kubeLabels.install]: input.owner.install } : {}),
  };
  const data: Record<string, string> = { driver: stepDriverScript, mark: input.mark };
  input.commands.forEach((argv, i) => {
    argv.forEach((word, j) => {
      data[`argv.${i}.${j}`] = word;
    });
  });
  const filePaths: Record<string, string> = {};
  for (const [name, content] of Object.entries(input.files)) {
    const key = `file.${secretKeyPart(name)}`;
    data[key] = content;
    filePaths[name] = `${stepInputDir}/${key}`;
  }
  // Each variable a file the driver exports: the pod's spec holds neither its value nor its name.
  for (const [name, value] of Object.entries(input.env)) {
    data[`env.${name}`] = value;
  }

  const workDir = input.cwd ?? defaultStepWorkDir;
  const volumeMounts = [
    { name: "in", mountPath: stepInputDir, readOnly: true },
    { name: "out", mountPath: stepOutputDir },
    { name: "tmp", mountPath: "/tmp" },
    ...(input.cwd === undefined ? [{ name: "work", mountPath: defaultStepWorkDir }] : []),
  ];
  const volumes = [
    // Readable by the pod's user (not root) and nobody else: the pod has no other user.
    { name: "in", secret: { secretName: input.name, defaultMode: 0o444 } },
    { name: "out", emptyDir: { sizeLimit: "1Mi" } },
    { name: "tmp", emptyDir: {} },
    ...(input.cwd === undefined ? [{ name: "work", emptyDir: {} }] : []),
  ];
  const limits: Record<string, string> = {};
  if (input.limits?.memoryBytes !== undefined) limits.memory = String(input.limits.memoryBytes);
  if (input.limits?.cpus !== undefined) limits.cpu = `${Math.max(1, Math.round(input.limits.cpus * 1000))}m`;

  const job = hardenedJob({
    name: input.name,
    namespace: input.namespace,
    metadata: { labels, annotations },
    deadlineSeconds: input.activeDeadlineSeconds,
    ttlSeconds: input.ttlSecondsAfterFinished ?? 600,
    graceSeconds: Math.max(1, Math.ceil(input.killGraceMs / 1000)),
    user: { uid: stepUser, gid: stepUser },
    pod: { volumes },
    container: {
      name: "step",
      image: input.image,
      command: ["/bin/sh", `${stepInputDir}/driver`],
      workingDir: workDir,
      ...(Object.keys(limits).length > 0 ? { resources: { limits } } : {}),
      securityContext: { runAsNonRoot: true },
      volumeMounts,
    },
  });
  const secret: KubeObject = {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: input.name, namespace: input.namespace, labels, annotations },
    type: "Opaque",
    immutable: true,
    stringData: data,
  };
  return { job, secret, filePaths };
}

/** The bytes a Secret's data takes (what the API server's 1 MiB limit counts). */
export function secretBytes(secret: KubeObject): number {
  const data = (secret.stringData ?? {}) as Record<string, string>;
  return Object.entries(data).reduce(
    (sum, [key, value]) => sum + Buffer.byteLength(key) + Buffer.byteLength(value),
    0,
  );
}

/**
 * A label value as Kubernetes takes it (at most 63 characters of `[A-Za-z0-9._-]`, alphanumeric
 * at both ends): the value itself when it is one, else `h-` and a hash of it (the whole value is
 * in an annotation of the same name).
 */
export function labelValue(value: string): string {
  if (/^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/.test(value)) return value;
  return `h-${createHash("sha256").update(value).digest("hex").slice(0, 40)}`;
}

function secretKeyPart(name: string): string {
  return /^[A-Za-z0-9._-]{1,200}$/.test(name)
    ? name
    : createHash("sha256").update(name).digest("hex").slice(0, 16);
}
