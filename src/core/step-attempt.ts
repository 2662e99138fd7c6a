import { z } from "zod";
import { ErrorInfo } from "./events.js";

/**
 * A step's container when its host says `executor: docker`: the runner runs each command of the
 * attempt in a hardened container of this image (exec/docker/docker-executor.ts). Limits are resolved by
 * the parser (the avtomatika-bot limits filled in as defaults), so a runner applies exactly what it
 * is sent.
 */
export const StepContainer = z.object({
  image: z.string().min(1),
  memory_bytes: z.number().int().positive(),
  cpus: z.number().positive(),
  pids: z.number().int().positive(),
  /** `none`, `host` or a Docker network name. */
  network: z.string().min(1),
});
export type StepContainer = z.infer<typeof StepContainer>;

/**
 * One attempt of one step on one host: what the engine sends to wherever the host is
 * (this process, a runner over WebSocket, an agent-server over HTTP) and what comes back.
 * It crosses process boundaries, so it is a zod schema.
 */
export const StepAttemptRequest = z.object({
  run_id: z.string(),
  step: z.string(),
  host: z.string(),
  attempt: z.number().int().positive(),
  action: z.enum(["cmd.run", "shell.run"]),
  /** cmd.run: lines, each run as its own command. shell.run: the whole script. */
  script: z.string(),
  shell: z.string().default("bash"),
  /** Env laid over the host's own environment: workflow env, step env, variables. */
  env: z.record(z.string(), z.string()),
  cwd: z.string().optional(),
  timeout_ms: z.number().int().positive().optional(),
  export_vars: z.boolean().default(false),
  max_output_bytes: z.number().int().nonnegative().optional(),
  /** Folder where the full stdout/stderr are kept, as `<run>-<step>-<host>.stdout|stderr`. */
  output_path: z.string().optional(),
  /** Values to mask in everything sent back (besides secret-named env values). */
  secrets: z.array(z.string()).default([]),
  /**
   * Names that hold secrets besides `*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PASSWORD` (the workflow's
   * `secrets:` list): their values in env and in exports are masked from the moment they exist.
   */
  secret_names: z.array(z.string()).default([]),
  /**
   * The step's `image:`: the image of its pod on a runner with the Kubernetes executor (absent:
   * the runner's default image). A runner that runs steps as processes fails an attempt with it.
   */
  image: z.string().min(1).optional(),
  /** Run in a container (a host with `executor: docker`); absent: processes on the host. */
  container: StepContainer.optional(),
  /**
   * Set when an unconfined run (a platform admin's) sent the attempt: its container may join any
   * network and run any image, and its `cwd` may be any folder but runyard's own
   * (core/work-folders.ts). Absent (a confined run's, or a server that predates the field), a
   * runner holds the container to a member's rules (core/container-policy.ts) before it creates
   * it, and the `cwd` to its roots. Read and written through `stepConfinement` (core/confinement.ts).
   */
  unrestricted: z.literal(true).optional(),
  /**
   * The run's tenant (null: a run outside any tenant). A shared runner gives a tenant's steps a
   * network of their own with the internal destinations its operator allows that tenant
   * (exec/sandbox/sandbox-network.ts); absent (a server that predates the field), it gives one too.
   */
  tenant_id: z.string().nullable().optional(),
});
export type StepAttemptRequest = z.infer<typeof StepAttemptRequest>;
export type StepAttemptRequestInput = z.input<typeof StepAttemptRequest>;

export const StepAttemptResult = z.object({
  status: z.enum(["success", "failed", "timeout", "canceled"]),
  exit_code: z.number().int().nullable(),
  /** Variables exported by BOPS_EXPORT lines and the $RUNYARD_OUTPUT file (unmasked). */
  exports: z.record(z.string(), z.string()),
  duration_ms: z.number(),
  memory_peak_bytes: z.number(),
  cpu_ms: z.number(),
  /** Full-output files kept on the host, when output_path was set. */
  output_files: z.array(z.string()).default([]),
  /**
   * Names of exports that are secrets: secret-named, or whose values hold a secret this host
   * masks. The engine masks those values everywhere too, and hands them on only as env.
   */
  secret_exports: z.array(z.string()).default([]),
  /** Things the user should know that did not fail the step (an export line that was ignored). */
  warnings: z.array(z.string()).default([]),
  error: ErrorInfo.optional(),
});
export type StepAttemptResult = z.infer<typeof StepAttemptResult>;

/** Receives a step attempt's output as it happens: already masked and capped. */
export type StepOutputSink = (stream: "stdout" | "stderr", data: string) => void;

/**
 * Runs step attempts on one host: this process, an agent-server over HTTP, or a runner via the
 * server. The engine sees only this; entry points wire the backends.
 */
export interface StepRunner {
  /**
   * The attempt may wait before it starts (a job queued until a runner takes it up): the runner
   * calls `io.started` when it does, and the engine says `step.started` only then. Otherwise the
   * attempt starts as it is handed over.
   */
  readonly startsLater?: boolean;
  /** Resolves with the attempt's result; step failures are results, never rejections. */
  runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal; started?: () => void },
  ): Promise<StepAttemptResult>;
}
