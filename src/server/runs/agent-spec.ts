import { z } from "zod";
import { AgentBudget, AgentSandbox, AgentTests } from "../../core/jobs/agent.js";
import { CopiedFile, McpServers, SetupCommand } from "../../core/jobs/agent-tools.js";
import { maxNameLength } from "../api-schemas.js";

/**
 * What an agent run is asked to do, as submitted (`POST /api/runs {"kind":"agent"}`, OpenRunner-style
 * `{input, metadata}`, `runyard agent run`) and stored encrypted as the run's spec.
 */

const agentName = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,39}$/, "an agent name is lower-case letters, digits and _ (e.g. claude_code)");

const envName = z
  .string()
  .max(maxNameLength)
  .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "an environment variable name");

/**
 * The longest prompt (and description) of a task: a long issue with its logs fits, and the
 * stored spec of a run stays far under what a list or a runner's job message carries.
 */
export const maxPromptLength = 256 * 1024;

/** The longest argument, environment value or acceptance criterion of a task. */
const maxArgLength = 4096;

const promptText = z
  .string()
  .max(
    maxPromptLength,
    `at most ${maxPromptLength} characters (256 KiB): pass big inputs as files of the repository`,
  );
const extraArgs = z.array(z.string().max(maxArgLength)).max(100);

export const AgentRepoInput = z.strictObject({
  url: z
    .string()
    .min(1)
    .refine((url) => !/^[a-z][a-z0-9+.-]*:\/\/[^/@]*@/i.test(url) || /^ssh:\/\/[^/:@]+@/i.test(url), {
      message:
        "the repo URL holds a user or token; give the token as a secret (GITHUB_TOKEN or GIT_TOKEN) instead: it reaches git through GIT_ASKPASS, never a URL",
    })
    .describe(
      "what git clones: https or ssh (a path of a bare repo on the runner for a platform admin only); never with credentials in it",
    ),
  base: z
    .string()
    .min(1)
    .optional()
    .describe("the branch to start from; the remote's default branch when absent"),
  branch: z
    .string()
    .regex(/^[A-Za-z0-9._/-]{1,200}$/, "a branch name of letters, digits and . _ / -")
    .optional()
    .describe("the new branch (`<branch>-<agent>` in a fan-out); `runyard/<run id>-<agent>` when absent"),
  push: z.boolean().default(true).describe("push the branch when the agent and the tests succeed"),
});

/** The native body of an agent run. */
export const SubmitAgentRunBody = z.strictObject({
  kind: z.literal("agent"),
  agent: agentName.optional().describe("one agent (default claude_code)"),
  agents: z
    .array(agentName)
    .min(1)
    .max(8)
    .optional()
    .describe("fan-out: the same task to each agent at once, each in its own worktree and branch"),
  prompt: promptText.min(1).optional().describe("what to do; or give title and description"),
  title: z
    .string()
    .min(1)
    .max(maxNameLength, `at most ${maxNameLength} characters: put the rest in prompt or description`)
    .optional(),
  description: promptText.optional(),
  acceptance_criteria: z.array(z.string().max(maxArgLength)).max(100).default([]),
  model: z.string().min(1).max(maxNameLength).optional(),
  extra_args: extraArgs.default([]).describe("appended to the agent CLI's arguments"),
  env: z
    .record(envName, z.string().max(16_384))
    .default({})
    .describe("given to the agent (provider URL, keys)"),
  secrets: z
    .array(envName)
    .max(100)
    .default([])
    .describe(
      "names of stored secrets given to the agent as env (GITHUB_TOKEN or GIT_TOKEN is the git token)",
    ),
  cwd: z
    .string()
    .min(1)
    .max(maxArgLength)
    .optional()
    .describe(
      "work in this folder of the runner instead of a repo worktree: for anyone but a platform admin an absolute path under the operator's agent_cwd_roots, for a platform admin any folder but runyard's own (the runner's and server's homes, the agents' workspace), / and the runtime folders (else 400 AGENT_CWD_NOT_ALLOWED)",
    ),
  repo: AgentRepoInput.optional(),
  tests: AgentTests.strict()
    .optional()
    .describe(
      "run after the agent: a shell command or a playbook's YAML; `executor: {image, memory, cpus, pids, network}` runs the command in a hardened container on a runner with docker",
    ),
  sandbox: AgentSandbox.optional().describe(
    "run the agent in a hardened container of `image` on a runner with docker: only its worktree mounted, `memory` (like 2g), `cpus`, `pids`, and `network` model-only (the default: egress to the model endpoint alone) or none",
  ),
  timeout_secs: z.number().int().positive().max(86_400).default(300),
  stall_secs: z
    .number()
    .int()
    .positive()
    .max(86_400)
    .default(120)
    .describe("fail with AGENT_STALLED after this long without a sign of life"),
  budget: AgentBudget.optional().describe("stop with BUDGET_EXCEEDED past this many tokens or dollars"),
  mcp_servers: McpServers.optional().describe(
    "MCP servers by name, each agent given them in its own config format: {command, args, env} started by the agent inside its sandbox, or {url} (streamable HTTP) whose host the sandbox may reach for this task",
  ),
  setup: SetupCommand.optional().describe(
    "a shell command run in the worktree, in the agent's sandbox, before the first turn (e.g. npm ci); its failure ends the task with AGENT_SETUP_FAILED",
  ),
  copy_files: z
    .array(CopiedFile)
    .max(100)
    .optional()
    .describe(
      "files copied into the worktree before the first turn from the runner's agent_files_dir (e.g. .env): relative paths, no .., nothing leading out of that folder",
    ),
  group: z
    .string()
    .min(1)
    .max(maxNameLength)
    .optional()
    .describe("runner group; else the config file's repo routing"),
  labels: z.array(z.string().max(maxNameLength)).max(50).default([]),
});
export type SubmitAgentRunBody = z.infer<typeof SubmitAgentRunBody>;

/**
 * The OpenRunner-style body: `{"input":{"text"},"metadata":{"agent_type","cwd","timeout_secs","model","extra_args"}}`.
 * Strict at every level as native bodies are: a typo (`metadata.stall_secs`) is refused by name, not dropped.
 */
export const OpenRunnerRunBody = z.strictObject({
  input: z.strictObject({ text: promptText.min(1, "input.text is empty: say what the agent should do") }),
  metadata: z
    .strictObject({
      agent_type: agentName.optional(),
      cwd: z.string().max(maxArgLength).optional(),
      working_dir: z.string().max(maxArgLength).optional(),
      timeout_secs: z.number().int().positive().optional(),
      model: z.string().max(maxNameLength).optional(),
      extra_args: extraArgs.optional(),
    })
    .default({}),
});

/** The OpenRunner-style API's body as the native one. */
export function fromOpenRunnerBody(body: z.infer<typeof OpenRunnerRunBody>): Record<string, unknown> {
  const meta = body.metadata;
  const cwd = meta.cwd ?? meta.working_dir;
  return {
    kind: "agent",
    agent: meta.agent_type ?? "claude_code",
    prompt: body.input.text,
    ...(cwd ? { cwd } : {}),
    ...(meta.timeout_secs ? { timeout_secs: meta.timeout_secs } : {}),
    ...(meta.model ? { model: meta.model } : {}),
    ...(meta.extra_args ? { extra_args: meta.extra_args } : {}),
  };
}

/** A follow-up turn: which run it continues, and the sessions it resumes. */
export const AgentFollowUp = z.object({
  parent_run_id: z.string(),
  /** The first run of the conversation: the worktrees' key. */
  conversation: z.string(),
  turn: z.number().int().positive(),
  /** Per agent: its session id, branch, and the runner whose workspace and session store hold it. */
  agents: z.record(
    z.string(),
    z.object({ session_id: z.string(), branch: z.string().optional(), runner_id: z.string().optional() }),
  ),
});
export type AgentFollowUp = z.infer<typeof AgentFollowUp>;

/** The stored spec of an agent run. */
export const AgentRunSpec = z.object({
  agents: z.array(z.string()).min(1),
  prompt: z.string(),
  title: z.string(),
  model: z.string().optional(),
  extra_args: z.array(z.string()),
  env: z.record(z.string(), z.string()),
  secrets: z.array(z.string()),
  cwd: z.string().optional(),
  /** The run's confinement (core/confinement.ts `agentTaskConfinement`; absent: confined). */
  cwd_confined: z.boolean().default(true),
  repo: z
    .object({
      url: z.string(),
      base: z.string().optional(),
      branch: z.string().optional(),
      push: z.boolean(),
    })
    .optional(),
  tests: AgentTests.optional(),
  sandbox: AgentSandbox.optional(),
  timeout_secs: z.number(),
  stall_secs: z.number(),
  budget: AgentBudget.optional(),
  mcp_servers: McpServers.default({}),
  setup: SetupCommand.optional(),
  copy_files: z.array(z.string()).default([]),
  group: z.string().optional(),
  labels: z.array(z.string()),
  follow_up: AgentFollowUp.optional(),
  /**
   * A run that only publishes its parent's branch, asked after the parent ended: `push` pushes
   * it, `pull_request` pushes it and opens a pull request on the repo's forge. Set by the server only.
   */
  publish: z.enum(["push", "pull_request"]).optional(),
  /** A code forge's run (docs/forges.md): the forge's token is its git token. Set by the server only. */
  forge_id: z.string().optional(),
});
export type AgentRunSpec = z.infer<typeof AgentRunSpec>;

/** The prompt an agent gets: the agent runner's task context composed into words. */
export function composePrompt(body: SubmitAgentRunBody): { title: string; prompt: string } {
  const title = body.title ?? firstLine(body.prompt ?? body.description ?? "agent task");
  const parts: string[] = [];
  if (body.prompt) parts.push(body.prompt);
  if (body.title && !body.prompt) parts.push(`Task: ${body.title}`);
  if (body.description) parts.push(body.description);
  if (body.acceptance_criteria.length > 0) {
    parts.push(`Acceptance criteria:\n${body.acceptance_criteria.map((c) => `- ${c}`).join("\n")}`);
  }
  return { title, prompt: parts.join("\n\n") };
}

function firstLine(text: string): string {
  const line = text.split("\n", 1)[0]?.trim() ?? "";
  return line.length > 72 ? `${line.slice(0, 69)}...` : line || "agent task";
}
