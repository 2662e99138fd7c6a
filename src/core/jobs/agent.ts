import { z } from "zod";
import { ErrorInfo, type EventInput } from "../events.js";
import { TraceContextSchema } from "../trace-context-schema.js";
import { CopiedFile, McpServers, SetupCommand } from "./agent-tools.js";

/**
 * Job kind `agent`: one turn of one coding agent, the whole pipeline (docs/agents.md): workspace ->
 * agent -> tests -> commit -> push -> artifacts. Its steps are `step.*` events hosted by the agent (so
 * a fan-out run shows agents side by side), its transcript `agent.*` events.
 */

export const AgentBudget = z
  .object({
    tokens: z.number().int().positive().optional(),
    usd: z.number().positive().optional(),
  })
  .strict();
export type AgentBudget = z.infer<typeof AgentBudget>;

/** The repo an agent task works on, and what becomes of its branch. */
export const AgentRepo = z.object({
  url: z.string().min(1),
  base: z.string().optional(),
  branch: z.string().min(1),
  push: z.boolean(),
  /** The worktree's key: the conversation id, shared by follow-up turns. */
  key: z.string(),
  /** Check out `branch` as the previous turn left it (a follow-up) instead of cutting it. */
  reuse: z.boolean().default(false),
});
export type AgentRepo = z.infer<typeof AgentRepo>;

/**
 * The most an agent task's container may ask, checked at submit: past these a value is a mistake on
 * any machine. A runner's own, usually lower, ceilings are checked where the task runs.
 */
export const containerMaxima = { memoryBytes: 256 * 1024 ** 3, memory: "256g", cpus: 64, pids: 32_768 };

/** An agent task's container: its image, and its limits written as a workflow host's (`memory: 512m`). */
const taskContainer = {
  image: z.string().min(1),
  memory: z.union([z.string().min(1), z.number().positive()]).optional(),
  cpus: z.number().positive().max(containerMaxima.cpus).optional(),
  pids: z.number().int().positive().max(containerMaxima.pids).optional(),
};

/** Where a test command runs: a hardened container of `image`, as a workflow host's `executor: docker`. */
export const AgentTestsExecutor = z.strictObject({ ...taskContainer, network: z.string().min(1).optional() });
export type AgentTestsExecutor = z.infer<typeof AgentTestsExecutor>;

/** How a sandboxed agent reaches out: its model endpoint only (the default), or nothing at all. */
export const agentSandboxNetworks = ["model-only", "none"] as const;

/**
 * Runs the agent in a hardened container of `image`, not as a runner process (docs/agents.md): only
 * its worktree mounted, egress held to the model endpoint. Needs a runner with docker.
 */
export const AgentSandbox = z.strictObject({
  ...taskContainer,
  network: z.enum(agentSandboxNetworks).optional(),
});
export type AgentSandbox = z.infer<typeof AgentSandbox>;

/** Tests run after the agent: a command, or playbook steps (the playbook format), by the workflow engine. */
export const AgentTests = z.object({
  command: z.string().optional(),
  playbook: z.string().optional(),
  /** Run `command` in a container (a playbook says so in its own inventory); needs a runner with docker. */
  executor: AgentTestsExecutor.optional(),
});
export type AgentTests = z.infer<typeof AgentTests>;

/** Names the git token goes by (ADOS's, the agent runner's): git's alone, never in an agent's env. */
export const gitTokenNames: readonly string[] = ["GIT_TOKEN", "GITHUB_TOKEN"];

export const AgentTask = z.object({
  run_id: z.string(),
  /** The agent adapter (`src/agents/registry.ts`); also the host of this job's steps. */
  agent: z.string(),
  /** The whole prompt: the task's title, description and acceptance criteria composed. */
  prompt: z.string(),
  /** Names the task in commits and the branch. */
  title: z.string(),
  model: z.string().optional(),
  extra_args: z.array(z.string()).default([]),
  /** Credentials and provider settings for the agent, git token excluded. */
  env: z.record(z.string(), z.string()).default({}),
  /** The conversation's key (shared by follow-up turns): names the scratch folder of a task without repo or cwd. */
  key: z.string(),
  /** Work in this folder of the runner instead of a repo worktree (the OpenRunner-style API's `cwd`). */
  cwd: z.string().optional(),
  /**
   * Whether `cwd` must lie under the runner's allowed folders, links resolved (`agentTaskConfinement`
   * reads and writes it). Absent (an older server's job): confined.
   */
  cwd_confined: z.boolean().default(true),
  repo: AgentRepo.optional(),
  /** Reaches git through GIT_ASKPASS only. */
  git_token: z.string().optional(),
  /** The turn's span in the run's trace (tracing on): the agent's processes get `TRACEPARENT`. */
  trace: TraceContextSchema.optional(),
  tests: AgentTests.optional(),
  /** Run the agent in a container (see `AgentSandbox`); absent: the runner's default (`RUNYARD_AGENT_SANDBOX`). */
  sandbox: AgentSandbox.optional(),
  timeout_ms: z.number().int().positive(),
  stall_ms: z.number().int().positive(),
  budget: AgentBudget.optional(),
  /** What was left of the tightest tenant or user budget at the turn's start; past it: BUDGET_EXCEEDED. */
  spend_limit: z
    .object({
      usd: z.number().nonnegative(),
      /** The budget, as a person reads it: `tenant acme's daily budget of $20`. */
      budget: z.string(),
      /** When that budget starts again (ISO-8601 UTC). */
      resets_at: z.string(),
    })
    .optional(),
  /** Continue this session of the agent (a follow-up turn). */
  session_id: z.string().optional(),
  /** Only push the branch as the last turn left it (a "push" asked after the run ended, docs/agents.md). */
  publish_only: z.boolean().optional(),
  /** The turn's number in its conversation, from 1. */
  turn: z.number().int().positive().default(1),
  /** Values to mask in everything sent back (besides secret-named env values). */
  secrets: z.array(z.string()).default([]),
  /** MCP servers the agent gets in its own config format (core/jobs/agent-tools.ts). */
  mcp_servers: McpServers.default({}),
  /** Run in the worktree, in the turn's sandbox, before the first turn; its failure ends the task. */
  setup: SetupCommand.optional(),
  /** Copied into the worktree from the runner's `agent_files_dir` before the first turn. */
  copy_files: z.array(CopiedFile).default([]),
  /** `mcp_servers` the runner's config added (URLs may lead anywhere); the runner sets it, not the job. */
  mcp_operator: z.array(z.string()).default([]),
});
export type AgentTask = z.infer<typeof AgentTask>;

export const AgentJob = z.object({
  job_id: z.string(),
  kind: z.literal("agent"),
  payload: AgentTask,
});
export type AgentJob = z.infer<typeof AgentJob>;

export const AgentTokenUsage = z.object({
  input_tokens: z.number().int().nonnegative(),
  output_tokens: z.number().int().nonnegative(),
  cost_usd: z.number().nonnegative().optional(),
});
export type AgentTokenUsage = z.infer<typeof AgentTokenUsage>;

/** The agent runner's result fields, per agent. */
export const AgentJobResult = z.object({
  kind: z.literal("agent"),
  status: z.enum(["success", "failed", "canceled", "timeout"]),
  error: ErrorInfo.optional(),
  agent: z.string(),
  session_id: z.string().optional(),
  model: z.string().optional(),
  branch: z.string().optional(),
  commit: z.string().optional(),
  pushed: z.boolean().default(false),
  diff_stats: z
    .object({ files: z.number().int(), insertions: z.number().int(), deletions: z.number().int() })
    .optional(),
  tests: z.object({ status: z.string(), exit_code: z.number().int().nullable() }).optional(),
  usage: AgentTokenUsage,
  duration_ms: z.number(),
  memory_peak_bytes: z.number(),
  cpu_ms: z.number(),
  /** The agent's last message: its answer (chat) or its summary of the change. */
  final_text: z.string().optional(),
  artifacts: z.array(z.string()).default([]),
});
export type AgentJobResult = z.infer<typeof AgentJobResult>;

const agentEventTypes = new Set<EventInput["type"]>([
  "agent.message",
  "agent.tool_call",
  "agent.tool_result",
  "agent.usage",
  "artifact.created",
  "step.started",
  "step.output",
  "step.retrying",
  "step.finished",
  "notice",
]);

/** The steps of an agent task's pipeline, as its runner names them (runner/handlers/agent.ts). */
const pipelineSteps = new Set(["prepare", "setup", "agent", "test", "commit", "push"]);

/**
 * One of the pipeline's steps, or a playbook's `test: NAME` (NAME at most a step name's 200
 * characters): any other is one the runner made up, kept on the run however long or many.
 */
function isPipelineStep(step: string): boolean {
  return pipelineSteps.has(step) || (step.startsWith("test: ") && step.length <= 206);
}

/** Whether a runner may report `event` for this agent job: its transcript, and steps of its own agent. */
export function agentJobMaySend(job: AgentJob, event: EventInput): boolean {
  if (!agentEventTypes.has(event.type)) return false;
  if ("step" in event && event.step !== undefined && !isPipelineStep(event.step)) return false;
  if ("host" in event && event.host !== undefined) return event.host === job.payload.agent;
  return true;
}

/** A result with nothing done yet: the pipeline fills it in as it goes. */
export function emptyAgentResult(agent: string): AgentJobResult {
  return {
    kind: "agent",
    status: "failed",
    agent,
    pushed: false,
    usage: { input_tokens: 0, output_tokens: 0 },
    duration_ms: 0,
    memory_peak_bytes: 0,
    cpu_ms: 0,
    artifacts: [],
  };
}

export function agentEndedEarly(
  agent: string,
  status: "failed" | "canceled",
  error: ErrorInfo,
): AgentJobResult {
  return { ...emptyAgentResult(agent), status, error };
}
