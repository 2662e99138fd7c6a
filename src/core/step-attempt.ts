import { z } from "zod";
import { ErrorInfo } from "./events.js";
import { TraceContextSchema } from "./trace-context-schema.js";

/**
 * A step's container (`executor: docker`): each command runs in a hardened container of this image.
 * The parser resolves the limits (avtomatika-bot's as defaults), so a runner applies exactly these.
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

/** One attempt of one step on one host; it crosses process boundaries (runner, agent-server), so zod. */
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
  /** The workflow's `secrets:` names besides `*_TOKEN`, `*_KEY`, `*_SECRET`, `*_PASSWORD`: masked at once. */
  secret_names: z.array(z.string()).default([]),
  /** The step's pod image on the Kubernetes executor (absent: the default); a process runner fails it. */
  image: z.string().min(1).optional(),
  /** Run in a container (a host with `executor: docker`); absent: processes on the host. */
  container: StepContainer.optional(),
  /**
   * An unconfined (platform admin's) run's attempt: any network, image and `cwd` but runyard's own.
   * Absent (confined, or an older server), the runner holds the container to a member's rules
   * (core/container-policy.ts) and the `cwd` to its roots. Use `stepConfinement` to read and write it.
   */
  unrestricted: z.literal(true).optional(),
  /**
   * The run's tenant (null: none): a shared runner gives a tenant's steps a network of their own
   * with the destinations its operator allows that tenant; absent (an older server), one too.
   */
  tenant_id: z.string().nullable().optional(),
  /** The attempt's span in the run's trace (tracing on): its processes get `TRACEPARENT`. */
  trace: TraceContextSchema.optional(),
});
export type StepAttemptRequest = z.infer<typeof StepAttemptRequest>;
export type StepAttemptRequestInput = z.input<typeof StepAttemptRequest>;

export const StepAttemptResult = z.object({
  status: z.enum(["success", "failed", "timeout", "canceled"]),
  exit_code: z.number().int().nullable(),
  /** Variables exported by BOPS_EXPORT lines and the $RUNYARD_OUTPUT file (unmasked). */
  exports: z.record(z.string(), z.string()),
  duration_ms: z.number(),
  /**
   * Of `duration_ms`, how long the attempt took before its first command: entering the run's
   * sandbox (or making the step's container), its folders and files. Absent from older runners.
   */
  setup_ms: z.number().optional(),
  memory_peak_bytes: z.number(),
  cpu_ms: z.number(),
  /** Full-output files kept on the host, when output_path was set. */
  output_files: z.array(z.string()).default([]),
  /** Secret exports (secret-named, or holding a masked value): masked everywhere, handed on only as env. */
  secret_exports: z.array(z.string()).default([]),
  /** Things the user should know that did not fail the step (an export line that was ignored). */
  warnings: z.array(z.string()).default([]),
  error: ErrorInfo.optional(),
});
export type StepAttemptResult = z.infer<typeof StepAttemptResult>;

/** Receives a step attempt's output as it happens: already masked and capped. */
export type StepOutputSink = (stream: "stdout" | "stderr", data: string) => void;

/** Runs step attempts on one host (here, an agent-server, a runner); the engine sees only this. */
export interface StepRunner {
  /** The attempt may wait (a queued job): `step.started` only once `io.started` is called. */
  readonly startsLater?: boolean;
  /** Resolves with the attempt's result; step failures are results, never rejections. */
  runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal; started?: () => void },
  ): Promise<StepAttemptResult>;
}
