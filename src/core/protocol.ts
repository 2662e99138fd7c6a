import { z } from "zod";
import { RunyardError } from "./errors.js";
import { EventInputSchema } from "./events.js";
import { Job, JobResult, jobKinds } from "./jobs/index.js";

/**
 * The runner protocol (docs/architecture.md): JSON messages over one WebSocket the runner opens. Events
 * go in numbered batches; the server stores each once and acks it, the runner resends what is not
 * acked after a reconnect, so nothing is lost or doubled.
 */

/** Caps on what a runner says of itself: a tenant's runner says it, the server stores and lists it. */
export const runnerInfoCaps = { name: 200, hostname: 255, labels: 64, memory: 32 } as const;

const capped = (field: string, max: number) =>
  z.string().max(max, `a runner's ${field} may have at most ${max} characters`);

export const RunnerInfo = z.object({
  id: capped("id", runnerInfoCaps.name).min(1),
  group: capped("group", runnerInfoCaps.name).default("default"),
  labels: z
    .array(capped("label", runnerInfoCaps.name))
    .max(runnerInfoCaps.labels, `a runner may have at most ${runnerInfoCaps.labels} labels`)
    .default([]),
  mode: z.enum(["chat", "issue", "all"]).default("all"),
  capacity: z.number().int().positive().default(1),
  cpus: z.number().nullable().default(null),
  memory: capped("memory", runnerInfoCaps.memory).nullable().default(null),
  hostname: capped("hostname", runnerInfoCaps.hostname),
  tenant_id: capped("tenant_id", runnerInfoCaps.name).nullable().default(null),
  version: capped("version", runnerInfoCaps.name).nullable().default(null),
  /** Marked shared (`--shared`, as GitLab's instance runners): runs of any tenant, but only isolated. */
  shared: z.boolean().default(false),
  /**
   * How runs are kept from each other and the runner: `sandbox` (bubblewrap: mount and pid namespaces
   * per step and agent turn), `docker` (a container per step), or `none` (the runner's own user).
   */
  isolation: z.enum(["sandbox", "docker", "none"]).default("none"),
  /** The job kinds this runner handles, the only ones offered; absent (an older runner): every kind. */
  kinds: z.array(z.enum(jobKinds)).default([...jobKinds]),
});
export type RunnerInfo = z.infer<typeof RunnerInfo>;

/** Why a runner may not say hello as `info` (a field past its cap), naming the first few; undefined when it may. */
export function runnerInfoRefusal(info: unknown): RunyardError | undefined {
  const checked = RunnerInfo.safeParse(info);
  if (checked.success) return undefined;
  const { issues } = checked.error;
  const named = issues.slice(0, 5).map((issue) => `${issue.path.map(String).join(".")}: ${issue.message}`);
  const more = issues.length > named.length ? `; and ${issues.length - named.length} more` : "";
  return new RunyardError("INVALID_INPUT", `the runner's hello was refused: ${named.join("; ")}${more}`, {
    hint: "Shorten the runner's id, group, labels or hostname (--id, --group, --labels or their RUNYARD_* settings) and start it again.",
  });
}

/** One sample of a bot container's use, taken by its runner. */
export const BotStats = z.object({
  bot_id: z.string(),
  memory_bytes: z.number().nonnegative(),
  cpu_percent: z.number().nonnegative(),
  at: z.string(),
  /** The container's memory limit; null when the engine did not say. */
  memory_limit_bytes: z.number().nonnegative().nullable().default(null),
  /** Bytes received and sent since the container started (0 without a network). */
  net_rx_bytes: z.number().nonnegative().default(0),
  net_tx_bytes: z.number().nonnegative().default(0),
  pids: z.number().int().nonnegative().default(0),
  /** Restarts of the bot's container in its current life, at the sample. */
  restarts: z.number().int().nonnegative().default(0),
});
export type BotStats = z.infer<typeof BotStats>;

/** What the server asks of a bot the runner holds (`bot_call`): an inbound webhook, or its kept log. */
export const BotCall = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("hook"),
    /** The container port the request goes to, inside the bot's own network. */
    port: z.number().int().min(1).max(65_535),
    method: z.string(),
    /** The path and query after the bot's hook prefix, starting with `/`. */
    path: z.string(),
    headers: z.record(z.string(), z.string()),
    body_base64: z.string(),
  }),
  z.object({ kind: z.literal("log") }),
]);
export type BotCall = z.infer<typeof BotCall>;

/** The runner's answer to a `bot_call`. */
export const BotReply = z.object({
  status: z.number().int(),
  headers: z.record(z.string(), z.string()).default({}),
  body_base64: z.string().default(""),
  /** Set when the call could not be made (no such bot here, the port not answering...). */
  error: z.object({ code: z.string(), message: z.string() }).optional(),
  /** `bot_reply_part` messages sent before this answer (a log); theirs, then `body_base64`, are the body. */
  parts: z.number().int().nonnegative().optional(),
});
export type BotReply = z.infer<typeof BotReply>;

/** The most body bytes one `bot_reply_part` carries (before base64): far below the link's largest message. */
export const botReplyPartBytes = 256 * 1024;

/**
 * The largest message a runner may send; past it the server closes the socket (1009) before reading.
 * An event batch is at most about 1 MiB as JSON (96 KiB of output, every character escaped), a bot
 * answer's part 342 KiB as base64, a result with exports under 2 MiB: room enough, while a member's
 * runner cannot make the server read 64 MiB at once.
 */
export const maxRunnerMessageBytes = 4 * 1024 * 1024;
/** WebSocket's "message too big": a runner's message past `maxRunnerMessageBytes`. */
export const messageTooBigCloseCode = 1009;
/** WebSocket's "policy violation": a message no runner sends (the close reason says what). */
export const policyCloseCode = 1008;

/** The most runs a hello names as kept (`runs`); a runner keeping more names its newest. */
export const maxKeptRuns = 1000;

export const HeldJob = z.object({ id: z.string(), batch: z.number().int().nonnegative() });
export type HeldJob = z.infer<typeof HeldJob>;

/** Runner -> server. */
export const RunnerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("hello"),
    runner: RunnerInfo,
    /** Every job it holds, with its last event batch; the server ends at once any leased to it not listed. */
    jobs: z.array(HeldJob).default([]),
    /** Jobs of an earlier life of this runner whose processes it found and killed at start. */
    reaped: z.array(z.string()).default([]),
    /** Bots whose containers it found at start (by label): unwanted ones get `remove_bot`, others adopted. */
    bots: z.array(z.string()).default([]),
    /**
     * By bot id, the install its container is labelled with (`runyard.install`; missing: made before
     * that label). A server disowns only its own install's; an older runner sends none.
     */
    bot_installs: z.record(z.string(), z.string()).optional(),
    /**
     * Runs whose folders (and sandboxes) it keeps: the server sends `run_ended` for those over, and
     * later for these and its steps' runs as each ends. An older runner sends none and gets none.
     */
    runs: z.array(z.string().min(1).max(200)).max(maxKeptRuns).optional(),
  }),
  z.object({
    type: z.literal("heartbeat"),
    /** What the containers of the bots it holds used at their last sample (only new samples). */
    bots: z.array(BotStats).default([]),
  }),
  /** The runner is shutting down: it finishes what it holds and takes no new work. */
  z.object({ type: z.literal("draining") }),
  /** The runner stopped a job without a result (shutdown grace passed); the server ends it as lost. */
  z.object({ type: z.literal("abandoned"), job_id: z.string(), reason: z.string() }),
  z.object({ type: z.literal("accept"), job_id: z.string() }),
  /**
   * Instead of `accept`: the runner cannot run this job (no handler, or it lacks what it needs). The
   * server offers it again after a growing back-off, and after a few refusals fails it (JOB_REFUSED).
   */
  z.object({ type: z.literal("refuse"), job_id: z.string(), reason: z.string().max(2000) }),
  /** Spine events of one job (`step.output` ...), without run_id, seq and ts: the server gives those. */
  z.object({
    type: z.literal("events"),
    job_id: z.string(),
    batch: z.number().int().positive(),
    events: z.array(EventInputSchema),
  }),
  /** The answer to the server's `bot_call` of the same id. */
  z.object({ type: z.literal("bot_reply"), call_id: z.string(), reply: BotReply }),
  /** Part of a long body (a bot's log) before its `bot_reply`, so other jobs' messages go between parts. */
  z.object({
    type: z.literal("bot_reply_part"),
    call_id: z.string(),
    body_base64: z.string().max(Math.ceil((botReplyPartBytes * 4) / 3) + 4),
  }),
  z.object({
    type: z.literal("finished"),
    job_id: z.string(),
    /** The number of the job's last event batch; the server checks it has them all. */
    batches: z.number().int().nonnegative(),
    /** That last batch itself, where the welcome said the server takes it here: one message, not two. */
    events: z.array(EventInputSchema).optional(),
    result: JobResult,
  }),
]);
export type RunnerMessage = z.infer<typeof RunnerMessage>;

/** Server -> runner. */
export const ServerMessage = z.discriminatedUnion("type", [
  z.object({
    type: z.literal("welcome"),
    runner_id: z.string(),
    heartbeat_ms: z.number().int().positive(),
    lease_ms: z.number().int().positive(),
    /** This server's install: the runner labels containers with it and adopts only its; older: none. */
    install_id: z.string().min(1).optional(),
    /** This server sends `run_ended`, so the runner keeps a run's folders until then, not by its timers. */
    run_ends: z.literal(true).optional(),
    /**
     * This server takes a job's first report (`events` or `finished`) as its accept, and its last
     * event batch inside its `finished`; older: `accept` first, the last batch in `events` before `finished`.
     */
    compact_job_reports: z.literal(true).optional(),
  }),
  z.object({ type: z.literal("heartbeat") }),
  z.object({
    type: z.literal("assign"),
    /** `{job_id, kind, payload}`, the payload typed by the kind. */
    job: Job,
    lease_expires_at: z.string(),
  }),
  z.object({ type: z.literal("ack"), job_id: z.string(), batch: z.number().int().nonnegative() }),
  z.object({ type: z.literal("done"), job_id: z.string() }),
  z.object({ type: z.literal("cancel"), job_id: z.string() }),
  /** A bot container the runner reported at hello belongs to no live bot of its: remove it. */
  z.object({ type: z.literal("remove_bot"), bot_id: z.string() }),
  /** Asks the runner about a bot it holds; it answers `bot_reply` with the same id. */
  z.object({ type: z.literal("bot_call"), call_id: z.string(), bot_id: z.string(), call: BotCall }),
  /** The server no longer wants this job (lease expired, run ended): stop it and forget it. */
  z.object({ type: z.literal("drop"), job_id: z.string() }),
  /** The run is final: a runner that named `runs` ends its sandbox and folders once it holds no job of it. */
  z.object({ type: z.literal("run_ended"), run_id: z.string() }),
  z.object({ type: z.literal("error"), code: z.string(), message: z.string(), hint: z.string().optional() }),
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

export const runnerSocketPath = "/api/runners/connect";
/** The WebSocket close code of a runner whose token was revoked. */
export const revokedCloseCode = 4001;
