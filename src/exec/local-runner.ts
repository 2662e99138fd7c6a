import { attemptEndedEarly } from "../core/attempt-ended-early.js";
import { errorInfo } from "../core/errors.js";
import type {
  StepAttemptRequest,
  StepAttemptResult,
  StepContainer,
  StepOutputSink,
  StepRunner,
} from "../core/step-attempt.js";
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
       * A runner's: the containers of attempts not marked `unrestricted` (a member's run) are held
       * to a member's rules (core/container-policy.ts). `runyard run` runs its user's own workflow.
       */
      confineContainers?: boolean;
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
    const { containers, confineContainers, network: networkFor, jobs, ...given } = this.options;
    // A platform admin's step may work in any folder but runyard's own (core/work-folders.ts).
    const options = request.unrestricted
      ? { ...given, exposure: { ...given.exposure, unconfinedCwd: true } }
      : given;
    const attemptOptions = { ...options, signal: io.signal, onOutput: io.onOutput };
    // The runner writes output_path's files itself, outside any sandbox or container.
    const outputRefusal =
      request.output_path === undefined ? undefined : this.executor.hostFolderRefusal?.(request.output_path);
    if (outputRefusal) {
      return attemptEndedEarly(
        "failed",
        errorInfo(
          "SPAWN_FAILED",
          `output_path ${outputRefusal}`,
          "Name a folder of your own for output_path, outside the runner's and server's homes (such as one under the step's cwd or /var/log).",
        ),
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
      return attemptEndedEarly("failed", errorInfo("SPAWN_FAILED", held.problem, heldCwdHint));
    }
    const cwdRefusal =
      request.cwd === undefined || onCluster
        ? undefined
        : this.executor.cwdRefusal?.(held?.path ?? request.cwd, options.exposure);
    if (cwdRefusal) {
      return attemptEndedEarly(
        "failed",
        errorInfo(
          "STEP_CWD_NOT_ALLOWED",
          cwdRefusal,
          request.unrestricted
            ? "Name a folder outside runyard's own (the runner's and server's homes, the agents' workspace), and not /, /proc, /sys, /dev, /run or the host's /tmp itself."
            : "Name a folder under the runner's working folder or its step_cwd_roots as the step's cwd; the runner's operator can list more (step_cwd_roots, RUNYARD_STEP_CWD_ROOTS).",
        ),
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
      return attemptEndedEarly(
        "failed",
        errorInfo(
          "SPAWN_FAILED",
          `step "${request.step}" names image ${request.image}, and this runner runs steps as processes: only a runner with the Kubernetes executor runs a step in an image`,
          "Run the step on runners with RUNYARD_EXECUTOR=kubernetes (give its host labels: [kubernetes]), or remove image: from the step.",
        ),
      );
    }
    if (!request.container) {
      // Never the host's network in place of one the attempt should have had: it fails instead.
      let network: SandboxNetwork | undefined;
      try {
        network = await networkFor?.(request);
      } catch (error) {
        return attemptEndedEarly(
          "failed",
          errorInfo(
            "SPAWN_FAILED",
            `cannot give the step a network of its own: ${(error as Error).message}`,
            "See the runner's log; the runner's egress proxy could not listen for this run's sandbox.",
          ),
        );
      }
      const exposure = network ? { ...options.exposure, network } : options.exposure;
      // A command that enters a run's sandbox gets no bwrap --setenv: the proxy's variables go in its env.
      const attempt = network ? { ...request, env: { ...request.env, ...network.env } } : request;
      return runStepAttempt(this.executor, attempt, { ...attemptOptions, ...(exposure ? { exposure } : {}) });
    }
    if (!containers) {
      return attemptEndedEarly(
        "failed",
        errorInfo(
          "SPAWN_FAILED",
          `host "${request.host}" runs its steps in containers (executor: docker), and this machine has no Docker engine runyard can reach`,
          "Start Docker where the step runs (and let runyard use /var/run/docker.sock), or remove `executor: docker` from the host.",
        ),
      );
    }
    const executor = containers(request.container, {
      runId: request.run_id,
      step: request.step,
      host: request.host,
      confined: confineContainers === true && request.unrestricted !== true,
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
