/**
 * The Kubernetes executor of workflow steps (docs/scale.md): each attempt one Job (step-job.ts)
 * whose pod runs its commands through the step driver. Output is the pod's log, followed live;
 * the driver's trailer says which command failed and hands `$RUNYARD_OUTPUT` back, so masking,
 * caps and exports stay in step-attempt.ts for every executor. Cancel and timeout delete the Job
 * (Foreground) and wait for its pod; the Job and its Secret go however the attempt ended.
 */
import { randomBytes } from "node:crypto";
import { StringDecoder } from "node:string_decoder";
import type { RunyardError } from "../../core/errors.js";
import type {
  AttemptCommand,
  AttemptSetup,
  ExecAttempt,
  ExecResult,
  Executor,
  OutputFileContents,
} from "../types.js";
import type { KubeCluster } from "./cluster.js";
import { ownedBy } from "./job-objects.js";
import { jobEnded, runJobToEnd } from "./job-run.js";
import type { PodStartLimits } from "./pod-start.js";
import {
  envNameProblem,
  maxSecretBytes,
  type StepJobInput,
  secretBytes,
  stepJobManifests,
  stepJobName,
  stepOutputPath,
} from "./step-job.js";
import { type DriverResult, TrailerSplitter } from "./step-trailer.js";

export interface KubeStepSettings {
  cluster: KubeCluster;
  /** The image of the attempt's pod: the step's `image:`, else the runner's default. */
  image: string;
  owner: StepJobInput["owner"];
  limits?: StepJobInput["limits"];
  start: PodStartLimits;
}

/** Past the step's own timeout, the Job's activeDeadlineSeconds: the cluster's stop when the runner is gone. */
const deadlineMarginSeconds = 60;
/** A step with no timeout still ends some day on the cluster's side. */
const defaultDeadlineSeconds = 24 * 3600;

/** The container the driver runs in (step-job.ts). */
const stepContainer = "step";

/** One attempt's executor: built per attempt, as the Docker executor is, since its image is the step's. */
export class KubeStepExecutor implements Executor {
  /** The runner's env never enters the pod, so no value of it needs masking here. */
  readonly hostSecrets: readonly string[] = [];
  /** Every line runs through the image's shell, as in a container (docker-executor.ts). */
  readonly plainCommands = false;
  private readonly attempts = new Set<KubeStepAttempt>();

  constructor(private readonly settings: KubeStepSettings) {}

  async startAttempt(setup: AttemptSetup): Promise<ExecAttempt> {
    const env: Record<string, string> = {
      // Tools that write under $HOME have somewhere to: the root is read-only.
      HOME: "/tmp",
      ...setup.env,
      RUNYARD_OUTPUT: stepOutputPath,
    };
    const attempt = new KubeStepAttempt(this.settings, setup, env, () => this.attempts.delete(attempt));
    this.attempts.add(attempt);
    return attempt;
  }

  /** Deletes the Jobs of attempts still running (the runner is stopping). */
  close(): void {
    for (const attempt of this.attempts) void attempt.dispose();
  }
}

class KubeStepAttempt implements ExecAttempt {
  readonly files: Record<string, string>;
  private output: OutputFileContents = { text: "" };
  private readonly jobs = new Set<string>();
  private disposed = false;

  constructor(
    private readonly settings: KubeStepSettings,
    private readonly setup: AttemptSetup,
    readonly env: Record<string, string>,
    private readonly onDisposed: () => void,
  ) {
    // Where the files will be in the pod: the same names for every Job of the attempt.
    this.files = stepJobManifests(this.input([], "")).filePaths;
  }

  run(command: AttemptCommand): Promise<ExecResult> {
    return this.runSequence([command.argv], command);
  }

  async runSequence(
    argvs: string[][],
    command: Omit<AttemptCommand, "argv">,
  ): Promise<ExecResult & { failedIndex?: number }> {
    const startedAt = performance.now();
    const { cluster } = this.settings;
    const signal = this.setup.signal;
    if (signal?.aborted) return jobEnded(startedAt, { status: "canceled" });
    const name = stepJobName(randomBytes(6).toString("hex"));
    const mark = `runyard-step-end-${randomBytes(16).toString("hex")}`;
    const timeoutSeconds = command.timeoutMs === undefined ? undefined : Math.ceil(command.timeoutMs / 1000);
    const manifests = stepJobManifests({
      ...this.input(argvs, mark, name),
      activeDeadlineSeconds:
        timeoutSeconds === undefined ? defaultDeadlineSeconds : timeoutSeconds + deadlineMarginSeconds,
    });
    const badName = Object.keys(this.env)
      .map(envNameProblem)
      .find((problem) => problem !== undefined);
    if (badName) {
      return jobEnded(startedAt, {
        status: "failed",
        spawnError: `${badName}, and a step's pod gets its variables from a shell: name it with letters, digits and _`,
      });
    }
    const bytes = secretBytes(manifests.secret);
    if (bytes > maxSecretBytes) {
      return jobEnded(startedAt, {
        status: "failed",
        spawnError: `the step's environment and script take ${bytes} bytes, over the 1 MiB a Kubernetes Secret holds: pass large values as files of the image or fetch them in the step`,
      });
    }
    const decoder = new StringDecoder("utf8");
    const splitter = new TrailerSplitter(Buffer.from(mark), (chunk) => {
      const text = decoder.write(chunk);
      if (text) command.onOutput("stdout", text);
    });
    const run = await runJobToEnd({
      cluster,
      name,
      create: () =>
        cluster.createJob(manifests.job, (owner) => [
          {
            resource: "secrets",
            body: {
              ...manifests.secret,
              metadata: { ...manifests.secret.metadata, ownerReferences: [ownedBy(owner)] },
            },
          },
        ]),
      start: this.settings.start,
      ...(signal ? { signal } : {}),
      ...(command.timeoutMs === undefined ? {} : { timeoutMs: command.timeoutMs }),
      graceSeconds: Math.max(1, Math.ceil(this.setup.limits.killGraceMs / 1000)),
      running: this.jobs,
      container: stepContainer,
      onLog: (chunk) => splitter.push(chunk),
      missed: (end) => !splitter.complete && !end.fault,
      logGraceMs: 10_000,
    });
    if ("stopped" in run) return jobEnded(startedAt, { status: run.stopped });
    if ("failed" in run) return jobEnded(startedAt, { status: "failed", spawnError: faultText(run.failed) });
    const end = run.finished;
    splitter.end();
    const rest = decoder.end();
    if (rest) command.onOutput("stdout", rest);
    const driver = splitter.result();
    this.output = outputFile(driver);
    if (end.fault) {
      command.onOutput("stderr", `runyard: ${end.fault.message}\n`);
      return jobEnded(startedAt, { status: "failed", exitCode: end.exitCode });
    }
    const exitCode = end.exitCode;
    return jobEnded(startedAt, {
      status: exitCode === 0 ? "success" : "failed",
      exitCode,
      ...(driver?.failedIndex !== undefined ? { failedIndex: driver.failedIndex } : {}),
    });
  }

  /** Read at the end only: the pod's file comes back with the driver's trailer. */
  outputFileChanged(): string | undefined {
    return undefined;
  }

  async readOutputFile(): Promise<OutputFileContents> {
    return this.output;
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    this.disposed = true;
    const graceSeconds = Math.max(1, Math.ceil(this.setup.limits.killGraceMs / 1000));
    await Promise.all([...this.jobs].map((name) => this.settings.cluster.removeJob(name, { graceSeconds })));
    this.onDisposed();
  }

  private input(commands: string[][], mark: string, name = stepJobName("000000000000")): StepJobInput {
    return {
      name,
      namespace: this.settings.cluster.namespace,
      image: this.settings.image,
      owner: this.settings.owner,
      mark,
      commands,
      env: this.env,
      files: this.setup.files ?? {},
      ...(this.setup.cwd !== undefined ? { cwd: this.setup.cwd } : {}),
      killGraceMs: this.setup.limits.killGraceMs,
      ...(this.settings.limits ? { limits: this.settings.limits } : {}),
    };
  }
}

function outputFile(driver: DriverResult | undefined): OutputFileContents {
  if (!driver) return { text: "" };
  if (driver.output) return { text: driver.output.toString("utf8") };
  if (driver.outputBytes === 0) return { text: "" };
  return {
    problem: `$RUNYARD_OUTPUT holds ${driver.outputBytes} bytes, more than a step's pod hands back (1 MiB and 64 KiB); nothing of it was read`,
  };
}

/** A cluster's fault as a step's spawn error: its message and what to do. */
function faultText(fault: RunyardError): string {
  return fault.hint ? `${fault.message} (${fault.hint})` : fault.message;
}
