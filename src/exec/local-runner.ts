import { resolve } from "node:path";
import { attemptEndedEarly } from "../core/attempt-ended-early.js";
import { type Confinement, stepConfinement } from "../core/confinement.js";
import { type ErrorCode, errorInfo } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import type {
  StepAttemptRequest,
  StepAttemptResult,
  StepContainer,
  StepOutputSink,
  StepRunner,
} from "../core/step-attempt.js";
import {
  realFolderRefusal,
  realPathOf,
  type WorkFolderRules,
  workFolderRefusal,
} from "../core/work-folders.js";
import { heldCwdHint, holdCwd } from "./held-cwd.js";
import { runStepAttempt } from "./step-attempt.js";
import type { ExecExposure, Executor, SandboxNetwork } from "./types.js";

/** Builds the executor of one attempt that runs in a container (see createDockerExecutors). */
export type ContainerExecutors = (
  container: StepContainer,
  attempt: { runId: string; step: string; host: string; confined?: boolean },
) => Executor;

/**
 * Builds the executor of one attempt that runs as a Kubernetes Job (a runner with `executor:
 * kubernetes`, see create-executors.ts): `image` is the step's own, when it names one.
 */
export type JobExecutors = (attempt: {
  runId: string;
  step: string;
  host: string;
  attempt: number;
  image?: string;
}) => Executor;

/** Runs step attempts on this machine with `executor` (see createExecutor). */
export class LocalStepRunner implements StepRunner {
  constructor(
    private readonly executor: Executor,
    private readonly options: {
      killGraceMs: number;
      /** Values masked in every attempt (e.g. the runner's own token). */
      maskValues?: string[];
      /** For attempts with a `container` (hosts with `executor: docker`); absent where Docker is not. */
      containers?: ContainerExecutors;
      /** What a sandbox shows every attempt besides its cwd (see `ExecExposure`). */
      exposure?: ExecExposure;
      /**
       * A runner with the Kubernetes executor's: attempts without a `container` run as Jobs
       * (step-executor.ts) instead of as processes here.
       */
      jobs?: JobExecutors;
      /**
       * A runner's: the containers of a confined run's attempts are held to a member's rules
       * (core/container-policy.ts). `runyard run` runs its user's own workflow.
       */
      confineContainers?: boolean;
      /**
       * A runner's: where a step that names its cwd may work (core/work-folders.ts, kind "step"),
       * asked before anything starts, as the server asked at submit: `roots` for a confined run's
       * steps, `own` for nobody's. A folder the runner made (`ExecExposure.runnerMadeCwd`: the run's
       * own, an agent task's, which its handler checked) is not asked. Absent (`runyard run`, the
       * user's own workflow): any folder the sandbox shows.
       */
      folders?: { roots: readonly string[]; own: readonly string[] };
      /**
       * A sandboxing runner's: the network of an attempt's sandbox, when it gets one of its own
       * (a tenant's run on a shared runner, see sandbox-network.ts); undefined: the host's.
       */
      network?: (request: StepAttemptRequest) => Promise<SandboxNetwork | undefined>;
    },
  ) {}

  /** The same runner, its attempts shown `exposure` by a sandbox. */
  withExposure(exposure: ExecExposure): LocalStepRunner {
    return new LocalStepRunner(this.executor, { ...this.options, exposure });
  }

  /** The same runner, each attempt's sandbox given the network `networkFor` answers. */
  withNetwork(
    networkFor: (request: StepAttemptRequest) => Promise<SandboxNetwork | undefined>,
  ): LocalStepRunner {
    return new LocalStepRunner(this.executor, { ...this.options, network: networkFor });
  }

  async runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal },
  ): Promise<StepAttemptResult> {
    const { containers, confineContainers, network: networkFor, jobs, folders, ...given } = this.options;
    const confinement = stepConfinement.read(request);
    // The runner writes output_path's files itself, outside any sandbox or container.
    const outputRefusal =
      request.output_path === undefined ? undefined : this.executor.hostFolderRefusal?.(request.output_path);
    if (outputRefusal) {
      return endedEarly(
        "SPAWN_FAILED",
        `output_path ${outputRefusal}`,
        "Name a folder of your own for output_path, outside the runner's and server's homes (such as one under the step's cwd or /var/log).",
      );
    }
    // Checked again before anything starts, as the server did at submit, with the same code. A
    // container mounts its cwd: the same folders as a sandboxed process step may work in.
    // A Job's cwd is a folder of its image, not of this machine: nothing here to refuse.
    const onCluster = jobs !== undefined && !request.container;
    // A container's cwd is judged, mounted and checked inside as the folder one descriptor names:
    // a step beside it could swap the path for a link between the check and the mount.
    const held = request.container && request.cwd !== undefined ? holdCwd(request.cwd) : undefined;
    if (held && "problem" in held) {
      return endedEarly("SPAWN_FAILED", held.problem, heldCwdHint);
    }
    // Where the step may work, as the server judged it at submit: the path as written and where it
    // leads now, then the folder a sandbox or container holds as it binds it.
    const rules = folders && { kind: "step" as const, ...folders, side: "runner" as const };
    const named = request.cwd;
    const judged = rules && named !== undefined && !onCluster && given.exposure?.runnerMadeCwd !== true;
    if (judged) {
      const refusal = workFolderProblem(named, held?.path, confinement, rules);
      if (refusal) return attemptEndedEarly("failed", refusal);
    }
    const options = judged
      ? {
          ...given,
          exposure: {
            ...given.exposure,
            cwdCheck: (real: string) => realFolderRefusal(real, confinement, rules, named)?.message,
          },
        }
      : given;
    const attemptOptions = { ...options, signal: io.signal, onOutput: io.onOutput };
    // What the sandbox itself cannot show: a folder it hides, or makes its own.
    const cwdRefusal =
      request.cwd === undefined || onCluster
        ? undefined
        : this.executor.cwdRefusal?.(held?.path ?? request.cwd, options.exposure);
    if (cwdRefusal) {
      return endedEarly(
        "STEP_CWD_NOT_ALLOWED",
        cwdRefusal,
        "Name a folder outside runyard's own (the runner's and server's homes, the agents' workspace), and not /, /proc, /sys, /dev, /run or the host's /tmp itself.",
      );
    }
    if (!request.container && jobs) {
      // On the cluster: the step's cwd is a folder of its image, its network the cluster's.
      const executor = jobs({
        runId: request.run_id,
        step: request.step,
        host: request.host,
        attempt: request.attempt,
        ...(request.image ? { image: request.image } : {}),
      });
      try {
        return await runStepAttempt(executor, request, attemptOptions);
      } finally {
        executor.close();
      }
    }
    if (!request.container && request.image !== undefined) {
      return endedEarly(
        "SPAWN_FAILED",
        `step "${request.step}" names image ${request.image}, and this runner runs steps as processes: only a runner with the Kubernetes executor runs a step in an image`,
        "Run the step on runners with RUNYARD_EXECUTOR=kubernetes (give its host labels: [kubernetes]), or remove image: from the step.",
      );
    }
    if (!request.container) {
      // Never the host's network in place of one the attempt should have had: it fails instead.
      let network: SandboxNetwork | undefined;
      try {
        network = await networkFor?.(request);
      } catch (error) {
        return endedEarly(
          "SPAWN_FAILED",
          `cannot give the step a network of its own: ${(error as Error).message}`,
          "See the runner's log; the runner's egress proxy could not listen for this run's sandbox.",
        );
      }
      const exposure = network ? { ...options.exposure, network } : options.exposure;
      // A command that enters a run's sandbox gets no bwrap --setenv: the proxy's variables go in its env.
      const attempt = network ? { ...request, env: { ...request.env, ...network.env } } : request;
      return runStepAttempt(this.executor, attempt, { ...attemptOptions, ...(exposure ? { exposure } : {}) });
    }
    if (!containers) {
      return endedEarly(
        "SPAWN_FAILED",
        `host "${request.host}" runs its steps in containers (executor: docker), and this machine has no Docker engine runyard can reach`,
        "Start Docker where the step runs (and let runyard use /var/run/docker.sock), or remove `executor: docker` from the host.",
      );
    }
    const executor = containers(request.container, {
      runId: request.run_id,
      step: request.step,
      host: request.host,
      confined: confineContainers === true && confinement === "confined",
    });
    try {
      return await runStepAttempt(executor, held ? { ...request, cwd: held.path } : request, {
        ...attemptOptions,
        ...(held ? { cwdIdentity: held.identity } : {}),
      });
    } finally {
      executor.close();
    }
  }
}

/** An attempt that failed before anything of it ran. */
function endedEarly(code: ErrorCode, message: string, hint: string): StepAttemptResult {
  return attemptEndedEarly("failed", errorInfo(code, message, hint));
}

/**
 * Why a step may not work in `cwd` (core/work-folders.ts), as the result of an attempt that never
 * ran: judged as written, then by its real path, the one of the folder held (`heldPath`) if any.
 */
function workFolderProblem(
  cwd: string,
  heldPath: string | undefined,
  confinement: Confinement,
  rules: WorkFolderRules,
): ErrorInfo | undefined {
  const written = workFolderRefusal(cwd, confinement, rules);
  if (written) return written.toInfo();
  let real = heldPath;
  try {
    real ??= realPathOf(resolve(cwd));
  } catch {
    // A path that cannot be resolved (too deep, a loop): judged as a held folder is, or refused.
    const held = holdCwd(cwd);
    if ("problem" in held) return errorInfo("SPAWN_FAILED", held.problem, heldCwdHint);
    real = held.path;
  }
  return realFolderRefusal(real, confinement, rules, cwd)?.toInfo();
}
