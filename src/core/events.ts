import { z } from "zod";
import { BotHealthReport } from "./bot-health.js";
import { botStates } from "./bot-states.js";
import type { runEventTypes } from "./event-types.js";
import { finalRunStatuses, runKinds, runStatuses } from "./run-states.js";

export { runEventTypes } from "./event-types.js";
export { finalRunStatuses, runKinds, runStatuses };

/**
 * The event spine (docs/architecture.md). Every producer (engine, executor, runner, server)
 * and every consumer (store, SSE, CLI, web UI) uses these schemas; nobody invents a format.
 */

export const RunKind = z.enum(runKinds);
export type RunKind = z.infer<typeof RunKind>;

export const RunStatus = z.enum(runStatuses);
export type RunStatus = z.infer<typeof RunStatus>;

export const stepStatuses = [
  "pending",
  "running",
  /** An approval step waiting for its answer (`step.waiting`); no runner is held meanwhile. */
  "waiting",
  "success",
  "failed",
  "skipped",
  "canceled",
  "timeout",
] as const;
export const StepStatus = z.enum(stepStatuses);
export type StepStatus = z.infer<typeof StepStatus>;

/** A failure's stable code and the words a person reads. */
export const ErrorInfo = z.object({
  code: z.string(),
  message: z.string(),
  hint: z.string().optional(),
});
export type ErrorInfo = z.infer<typeof ErrorInfo>;

/** One step on one host, as summed up at the end of a run. */
export const StepSummary = z.object({
  name: z.string(),
  host: z.string(),
  status: StepStatus,
  exit_code: z.number().int().nullable(),
  attempts: z.number().int(),
  duration_ms: z.number().optional(),
  memory_peak_bytes: z.number().optional(),
  cpu_ms: z.number().optional(),
  error: ErrorInfo.optional(),
  /** When its first attempt started; absent for a step that did not run here (skipped, kept). */
  started_at: z.string().optional(),
  /** When it finished. */
  ended_at: z.string().optional(),
  /** Why a `skipped` step did not run, e.g. `dependency "test" failed`. */
  reason: z.string().optional(),
  /** A retry kept this outcome of the run it retries (that run's id): the step did not run again. */
  kept_from: z.string().optional(),
});
export type StepSummary = z.infer<typeof StepSummary>;

/** One agent of an agent run as summed up at its end: a fan-out run has one per agent, compared. */
export const AgentSummary = z.object({
  agent: z.string(),
  status: z.enum(["success", "failed", "canceled", "timeout"]),
  error: ErrorInfo.optional(),
  model: z.string().optional(),
  session_id: z.string().optional(),
  branch: z.string().optional(),
  commit: z.string().optional(),
  pushed: z.boolean(),
  diff_stats: z.object({ files: z.number(), insertions: z.number(), deletions: z.number() }).optional(),
  tests: z.object({ status: z.string(), exit_code: z.number().int().nullable() }).optional(),
  input_tokens: z.number().int(),
  output_tokens: z.number().int(),
  cost_usd: z.number().optional(),
  duration_ms: z.number(),
  memory_peak_bytes: z.number(),
  cpu_ms: z.number(),
  final_text: z.string().optional(),
  artifacts: z.array(z.string()),
});
export type AgentSummary = z.infer<typeof AgentSummary>;

const base = {
  run_id: z.string(),
  seq: z.number().int().positive(),
  ts: z.string(),
};

const stepRef = { step: z.string(), host: z.string() };
/** The agent that said it: a fan-out run has several. */
const saidBy = { agent: z.string().optional() };

/** One field of an approval step's form (`inputs:`). */
export const ApprovalFormInput = z.object({
  name: z.string(),
  type: z.enum(["string", "number", "boolean", "choice"]),
  options: z.array(z.string()).optional(),
  default: z.string().optional(),
  required: z.boolean(),
  description: z.string().optional(),
});

/** Every event of the spine, one schema per `type`. */
const eventSchemas = [
  z.object({
    ...base,
    type: z.literal("run.queued"),
    kind: RunKind,
    name: z.string().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("run.started"),
    name: z.string().optional(),
    runner_id: z.string().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("run.finished"),
    status: RunStatus,
    error: ErrorInfo.optional(),
    duration_ms: z.number().optional(),
    vars: z.record(z.string(), z.string()).optional(),
    steps: z.array(StepSummary).optional(),
    /** Agent runs: each agent's result (the agent runner's result fields), side by side. */
    agents: z.array(AgentSummary).optional(),
    /** A failed workflow run whose steps' rollbacks all ran and succeeded. */
    rolled_back: z.literal(true).optional(),
    /** A failed workflow run: the rollback step that failed (`rollback: deploy`); later ones did not run. */
    rollback_failed: z.string().optional(),
    /** A workflow run's declared `outputs:`, masked: what a `workflow.call` step that ran it exports. */
    outputs: z.record(z.string(), z.string()).optional(),
    /** The run's `on:` handler steps that did not succeed; they never change its status. */
    handlers_failed: z.array(z.string()).optional(),
  }),
  z.object({
    ...base,
    type: z.literal("step.started"),
    ...stepRef,
    attempt: z.number().int().positive(),
  }),
  z.object({
    ...base,
    type: z.literal("step.output"),
    ...stepRef,
    stream: z.enum(["stdout", "stderr"]),
    data: z.string(),
  }),
  z.object({
    ...base,
    type: z.literal("step.retrying"),
    ...stepRef,
    attempt: z.number().int().positive(),
    exit_code: z.number().int().nullable(),
    delay_ms: z.number(),
    /** What kind of failure is retried: `error` (the command failed), `timeout`, `runner_lost`. */
    reason: z.enum(["error", "timeout", "runner_lost"]).optional(),
    /** The most attempts the step's retry policy makes. */
    max_attempts: z.number().int().positive().optional(),
    /** How the attempt failed. */
    error: ErrorInfo.optional(),
  }),
  z.object({
    ...base,
    type: z.literal("step.finished"),
    ...stepRef,
    status: StepStatus,
    exit_code: z.number().int().nullable(),
    attempts: z.number().int(),
    duration_ms: z.number(),
    memory_peak_bytes: z.number().optional(),
    cpu_ms: z.number().optional(),
    output_path: z.string().optional(),
    /** Why a `skipped` step did not run, e.g. `when: ${OK} == "true"`. */
    reason: z.string().optional(),
    error: ErrorInfo.optional(),
    /** A retry kept this outcome of the run it retries (that run's id): the step did not run again. */
    kept_from: z.string().optional(),
  }),
  /** An approval step started waiting: who may answer, what they read, and until when. */
  z.object({
    ...base,
    type: z.literal("step.waiting"),
    ...stepRef,
    message: z.string(),
    /** Usernames and `role:admin` / `role:member` of the run's tenant. */
    approvers: z.array(z.string()),
    /** When no answer by then rejects the step (APPROVAL_TIMEOUT). */
    deadline: z.string(),
    /** How many distinct approvers must approve (1 unless the step says more). */
    required: z.number().int().positive().optional(),
    /** No answer is taken before then (`wait:`). */
    not_before: z.string().optional(),
    /** `self_approval: false`: the run's submitter may not answer. */
    self_approval: z.literal(false).optional(),
    /** What the approver fills in: the names become the step's exports. */
    inputs: z.array(ApprovalFormInput).optional(),
  }),
  /** An approval step's answer: approved or rejected by `by`, or no answer by the deadline. */
  z.object({
    ...base,
    type: z.literal("approval.answered"),
    ...stepRef,
    decision: z.enum(["approved", "rejected", "timeout"]),
    /** Who answered (a username, or `token <id>` for a token without a user); null for a timeout. */
    by: z.string().nullable(),
    comment: z.string().optional(),
    /** An approved step's form as filled in: the values it exports. */
    inputs: z.record(z.string(), z.string()).optional(),
    /** A step that needed several approvals: who approved, in order. */
    approved_by: z.array(z.string()).optional(),
  }),
  /** A `workflow.call` step started its child run: the run of the saved workflow it calls. */
  z.object({
    ...base,
    type: z.literal("step.called"),
    ...stepRef,
    child_run_id: z.string(),
    workflow: z.string(),
    version: z.number().int().positive(),
  }),
  /**
   * One approver's answer to an approval step that needs several (`required: N`): counted once per
   * approver. The step's own answer is the `approval.answered` that follows the last one needed.
   */
  z.object({
    ...base,
    type: z.literal("approval.vote"),
    ...stepRef,
    decision: z.enum(["approved", "rejected"]),
    by: z.string(),
    comment: z.string().optional(),
    /** Approvals so far, this one included, and how many the step needs. */
    approvals: z.number().int().nonnegative(),
    required: z.number().int().positive(),
  }),
  z.object({
    ...base,
    type: z.literal("vars.exported"),
    ...stepRef,
    vars: z.record(z.string(), z.string()),
  }),
  z.object({
    ...base,
    type: z.literal("artifact.created"),
    name: z.string(),
    path: z.string(),
    size: z.number().int(),
    step: z.string().optional(),
    host: z.string().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("agent.message"),
    ...saidBy,
    role: z.enum(["assistant", "user", "system"]),
    text: z.string(),
  }),
  z.object({
    ...base,
    type: z.literal("agent.tool_call"),
    ...saidBy,
    call_id: z.string(),
    tool: z.string(),
    input: z.unknown(),
  }),
  z.object({
    ...base,
    type: z.literal("agent.tool_result"),
    ...saidBy,
    call_id: z.string(),
    output: z.string(),
    is_error: z.boolean().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("agent.usage"),
    ...saidBy,
    model: z.string().optional(),
    // Never below 0: a runner's negative usage would take back spend its tenant's budget counts.
    input_tokens: z.number().int().nonnegative(),
    output_tokens: z.number().int().nonnegative(),
    cost_usd: z.number().nonnegative().optional(),
  }),
  z.object({
    ...base,
    type: z.literal("bot.state"),
    bot_id: z.string(),
    state: z.enum(botStates),
    /** Of the container that just ended (a crash, a restart's predecessor). */
    exit_code: z.number().int().nullable().optional(),
    oom_killed: z.boolean().optional(),
    restarts: z.number().int().nonnegative().optional(),
    error: ErrorInfo.optional(),
    /** The last lines of the container that just ended, masked. */
    last_logs: z.array(z.string()).optional(),
    image: z.string().optional(),
    container_id: z.string().optional(),
    runner_id: z.string().optional(),
    /** With a health check: what its last probe found. */
    health: BotHealthReport.optional(),
  }),
  z.object({
    ...base,
    type: z.literal("notice"),
    level: z.enum(["info", "warn", "error"]),
    message: z.string(),
    step: z.string().optional(),
    host: z.string().optional(),
  }),
] as const;

export const RunEvent = z.discriminatedUnion("type", eventSchemas);
export type RunEvent = z.infer<typeof RunEvent>;

const stamp = { run_id: true, seq: true, ts: true } as const;
type Unstamped<T> = {
  -readonly [K in keyof T]: T[K] extends z.ZodObject<infer Shape, infer Config>
    ? z.ZodObject<Omit<Shape, keyof typeof stamp>, Config>
    : never;
};
/**
 * An event as a producer hands it over, before the spine gives it run_id, seq and ts: what a
 * runner sends in its `events` batches.
 */
export const EventInputSchema = z.discriminatedUnion(
  "type",
  eventSchemas.map((schema: z.ZodObject) => schema.omit(stamp)) as Unstamped<typeof eventSchemas>,
);
export type RunEventType = RunEvent["type"];

type SameUnion<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
/** Fails to compile when a type is in the union but not in `runEventTypes`, or the other way. */
const everyTypeListed: SameUnion<RunEventType, (typeof runEventTypes)[number]> = true;
void everyTypeListed;
export type EventOf<T extends RunEventType> = Extract<RunEvent, { type: T }>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** What a producer hands over: the spine adds run_id, seq and ts. */
export type EventInput = DistributiveOmit<RunEvent, "run_id" | "seq" | "ts">;
/** An event stamped with the time it happened, on its way to the store, which gives its seq. */
export type UnnumberedEvent = DistributiveOmit<RunEvent, "run_id" | "seq">;

export function isFinalStatus(status: RunStatus): boolean {
  return finalRunStatuses.includes(status);
}
