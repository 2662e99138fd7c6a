import { randomBytes } from "node:crypto";
import { isAbsolute, relative, resolve } from "node:path";
import { trustEveryRepository } from "../docker/container-launcher.js";
import type { ExecRequest, ExecResult, ProcessLauncher } from "../types.js";
import type { KubeCluster } from "./cluster.js";
import {
  type ClaimMount,
  hiddenInPod,
  jobObject,
  type KubeJobRequest,
  kubeContainerName,
  networkPolicyObject,
  secretObject,
} from "./job-objects.js";
import { jobEnded, runJobToEnd } from "./job-run.js";
import { PodLogLines } from "./pod-log.js";
import type { PodStartLimits } from "./pod-start.js";

/** How a runner's commands run as Jobs (the config file's k8s_* keys, resolved). */
export interface KubeJobSettings
  extends Pick<
    KubeJobRequest,
    "image" | "labels" | "extraSecrets" | "user" | "limits" | "nodeName" | "egress" | "deadlineSeconds"
  > {
  cluster: KubeCluster;
  /**
   * The workspace claim and the folder where this runner has it mounted: every folder a command
   * sees must lie inside, and is mounted into the pod at the same path by subPath.
   */
  claim?: { name: string; root: string };
  start: PodStartLimits;
}

/** Between SIGTERM and SIGKILL when a turn's pod is deleted. */
const graceSeconds = 5;

/**
 * Runs each command as a Kubernetes Job: an agent turn's launcher in `execution_mode: kubernetes`.
 * The cwd and exposure folders are mounted from the workspace claim at their own paths, so every
 * path the agent is given means the same in the pod. Output comes from the pod's log, line by line
 * on its own stream. Cancel, timeout and abort delete the Job (Foreground) and wait for its pod;
 * the Job is deleted however the command ended, retried while the API server is away
 * (KubeCluster.removeJob). A cluster fault (image not pulled, pod not scheduled, OOMKilled,
 * evicted, Job deleted by someone else, API gone) ends the command with `fault` set.
 */
export class KubeJobLauncher implements ProcessLauncher {
  private readonly running = new Set<string>();

  constructor(private readonly settings: KubeJobSettings) {}

  async run(request: ExecRequest): Promise<ExecResult> {
    const startedAt = performance.now();
    const { cluster, claim, start, ...shared } = this.settings;
    const mounts = this.mountsOf(request);
    if (typeof mounts === "string") return jobEnded(startedAt, { status: "failed", spawnError: mounts });
    const name = `runyard-${randomBytes(6).toString("hex")}`;
    const job: KubeJobRequest = {
      ...shared,
      name,
      namespace: cluster.namespace,
      argv: request.argv,
      env: podEnv(request.env),
      ...(request.cwd ? { workingDir: resolve(request.cwd) } : {}),
      ...(claim ? { claim: { name: claim.name, mounts } } : {}),
      graceSeconds,
    };
    // Aborted by the caller (cancel, the supervisor's timeout or stall) or by the request's own
    // time limit; either way the Job is deleted and waited for.
    const lines = new PodLogLines(request.onOutput);
    const run = await runJobToEnd({
      cluster,
      name,
      create: () =>
        cluster.createJob(jobObject(job), (owner) => [
          { resource: "networkpolicies", body: networkPolicyObject(job, owner) },
          { resource: "secrets", body: secretObject(job, owner) },
        ]),
      start,
      ...(request.signal ? { signal: request.signal } : {}),
      ...(request.timeoutMs === undefined ? {} : { timeoutMs: request.timeoutMs }),
      graceSeconds,
      running: this.running,
      container: kubeContainerName,
      onLog: (chunk) => lines.push(chunk),
      logGraceMs: 5000,
    });
    if ("stopped" in run) return jobEnded(startedAt, { status: run.stopped });
    if ("failed" in run) return jobEnded(startedAt, { status: "failed", fault: run.failed });
    lines.end();
    const end = run.finished;
    if (end.fault) return jobEnded(startedAt, { status: "failed", exitCode: end.exitCode, fault: end.fault });
    const exitCode = end.exitCode;
    return jobEnded(startedAt, {
      status: exitCode === 0 ? "success" : "failed",
      exitCode,
      ...(exitCode !== null && exitCode > 128 ? { signal: signalName(exitCode - 128) } : {}),
    });
  }

  /** Deletes the Jobs still running (the turn or the runner is stopping) and waits for their pods. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.running].map((name) => this.settings.cluster.removeJob(name, { graceSeconds })),
    );
  }

  /**
   * The claim's folders the command sees, at their own paths; a problem when one it writes lies
   * outside the claim. A folder it only reads that lies outside (the agent CLIs of a runner whose
   * home is not on the claim) must be in the image at the same path: `k8s_image` is built from the
   * runner's image.
   */
  private mountsOf(request: ExecRequest): ClaimMount[] | string {
    const claim = this.settings.claim;
    const folders: Array<[string, boolean]> = [];
    const program = request.argv[0];
    if (program && isAbsolute(program)) {
      const hidden = imageFileHidden(program, claim);
      if (hidden) return hidden;
    }
    if (request.cwd) folders.push([resolve(request.cwd), false]);
    for (const folder of request.exposure?.writable ?? []) folders.push([resolve(folder), false]);
    for (const folder of request.exposure?.readable ?? []) folders.push([resolve(folder), true]);
    for (const [folder, readOnly] of folders) {
      const hidden = readOnly ? imageFileHidden(folder, claim) : undefined;
      if (hidden) return hidden;
    }
    if (!claim) return [];
    const mounts: ClaimMount[] = [];
    const seen = new Set<string>();
    for (const [folder, readOnly] of folders) {
      if (seen.has(folder)) continue;
      seen.add(folder);
      const inside = relative(claim.root, folder);
      if (inside.startsWith("..") || isAbsolute(inside)) {
        // What the command only reads (the agent CLIs) may come with the image, where the runner has it.
        if (readOnly) continue;
        return `${folder} is not on the workspace claim ${claim.name} (mounted at ${claim.root} on the runner): a Job's pod writes only to folders of the claim; put the runner's home (RUNYARD_HOME) and workspace folder (RUNYARD_WORKSPACE_DIR) on it`;
      }
      mounts.push({ subPath: inside, mountPath: folder, readOnly });
    }
    return mounts;
  }
}

/**
 * Why `path`, which the pod must take from the image (it is not on the claim), cannot be there:
 * the pod's /tmp and home are empty folders over the image's.
 */
function imageFileHidden(path: string, claim: KubeJobSettings["claim"]): string | undefined {
  const resolved = resolve(path);
  if (claim) {
    const inside = relative(claim.root, resolved);
    if (!inside.startsWith("..") && !isAbsolute(inside)) return undefined;
  }
  const folder = hiddenInPod(resolved);
  if (!folder) return undefined;
  return `${resolved} lies under ${folder}, which every Job's pod gets as an empty folder, so the copy in k8s_image cannot be seen: install the agent CLIs outside ${folder} (runyard agents install --home <folder>, RUNYARD_HOME) or put that folder on the workspace claim`;
}

/**
 * The command's env as the pod gets it: without what belongs to the runner's machine (its PATH,
 * HOME, temp folder, hostname: the image's own apply), and with git told to trust the
 * worktree, whose owner the pod's user is not.
 */
function podEnv(env: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (!machineVariables.has(key)) out[key] = value;
  }
  trustEveryRepository(out);
  return out;
}

const machineVariables = new Set(["PATH", "HOME", "PWD", "OLDPWD", "TMPDIR", "HOSTNAME", "SHLVL", "_"]);

function signalName(number: number): string {
  return (
    ({ 9: "SIGKILL", 15: "SIGTERM", 2: "SIGINT", 1: "SIGHUP", 6: "SIGABRT" } as Record<number, string>)[
      number
    ] ?? `signal ${number}`
  );
}
