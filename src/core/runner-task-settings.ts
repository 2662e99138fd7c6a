import type { Config } from "./config.js";
import { credentialEnvNames } from "./config-env.js";
import type { AgentTask } from "./jobs/agent.js";
import { type AgentRepoSettings, type McpServer, mcpAgents, repoMatches } from "./jobs/agent-tools.js";

/** The runner's settings that shape the agent tasks it runs (the agent runner's config.yaml). */
export type RunnerTaskSettings = Pick<
  Config,
  "maxTurnSecs" | "llmRetryCount" | "llmModel" | "llmEndpoint" | "gitTokenEnvVar" | "llmApiKeyEnvVar"
> &
  Partial<Pick<Config, "agentRepos">>;

/**
 * An agent task as this runner runs it: its turn cut to the runner's longest, and what the task
 * leaves unset filled from the runner's settings and env. The task's own values always win.
 * Applied before the task's handler builds its masker, so filled-in credentials are masked too.
 * `notices`: what the task should be told (a cut timeout).
 */
export function applyRunnerSettings(
  task: AgentTask,
  settings: RunnerTaskSettings,
  env: Readonly<Record<string, string | undefined>>,
): { task: AgentTask; notices: string[] } {
  const notices: string[] = [];
  const out: AgentTask = { ...task, env: { ...task.env } };
  const maxMs = settings.maxTurnSecs === undefined ? undefined : settings.maxTurnSecs * 1000;
  if (maxMs !== undefined && task.timeout_ms > maxMs) {
    out.timeout_ms = maxMs;
    notices.push(
      `this runner cuts agent turns at ${settings.maxTurnSecs} s (default_timeout_seconds); the task asked for ${task.timeout_ms / 1000} s`,
    );
  }
  // A setting naming one of runyard's own credentials gets nothing: those never reach a task.
  const runnerEnv = (name: string) => (credentialEnvNames.includes(name) ? undefined : env[name]);
  const fill = (name: string, value: string | undefined) => {
    if (value && !out.env[name]) out.env[name] = value;
  };
  const keyName = settings.llmApiKeyEnvVar ?? "OPENAI_API_KEY";
  // The runner's key and endpoint go together: a task that brings its own key is not sent to the
  // runner's endpoint unless it names it.
  const fillKeyAndEndpoint = (endpoint: string | undefined) => {
    if (out.env.OPENAI_API_KEY) return;
    fill("OPENAI_API_KEY", runnerEnv(keyName));
    fill("OPENAI_BASE_URL", endpoint);
  };
  if (task.agent === "openai") {
    // The built-in loop reads only the task's env, where CLI agents inherit the runner's.
    fillKeyAndEndpoint(settings.llmEndpoint ?? env.OPENAI_BASE_URL);
    // A follow-up keeps the model its session started with.
    if (!task.model && !task.session_id && settings.llmModel) out.model = settings.llmModel;
  } else if (keyName !== "OPENAI_API_KEY") {
    // A CLI agent inherits OPENAI_API_KEY; a key kept under another name is given to it as that,
    // with the runner's OPENAI_BASE_URL (Codex takes a task's key and URL as one provider).
    fillKeyAndEndpoint(env.OPENAI_BASE_URL);
  }
  // Every agent caps its model retries with it: a CLI's own default (Claude Code's 10) lets a
  // refused key hold a run for minutes.
  fill("RUNYARD_LLM_RETRY_COUNT", String(settings.llmRetryCount));
  if (!task.git_token && settings.gitTokenEnvVar) {
    const token = runnerEnv(settings.gitTokenEnvVar);
    if (token) out.git_token = token;
  }
  applyRepoSettings(out, settings.agentRepos ?? [], notices);
  return { task: out, notices };
}

/**
 * The runner's `agent_repos:` entries matching the task's repository, laid on it: their MCP
 * servers beside the task's (the task's own winning a name both use), their setup commands
 * before the task's, their copy_files before the task's. Which servers are the operator's is the
 * runner's to say (`mcp_operator`), never a job's.
 */
function applyRepoSettings(out: AgentTask, entries: readonly AgentRepoSettings[], notices: string[]): void {
  out.mcp_operator = [];
  const url = out.repo?.url;
  if (!url) return;
  const setups: string[] = [];
  const files: string[] = [];
  for (const entry of entries) {
    if (!repoMatches(entry.match, url)) continue;
    const names = Object.keys(entry.mcp_servers).filter((name) => !(name in out.mcp_servers));
    if (names.length > 0 && !mcpAgents.includes(out.agent)) {
      notices.push(
        `this runner's agent_repos entry ${JSON.stringify(entry.match)} names MCP servers (${names.join(", ")}), and ${out.agent} takes none; it runs without them`,
      );
    } else {
      for (const name of names) {
        out.mcp_servers = { ...out.mcp_servers, [name]: entry.mcp_servers[name] as McpServer };
        out.mcp_operator.push(name);
      }
    }
    if (entry.setup) setups.push(entry.setup);
    files.push(...entry.copy_files);
  }
  if (out.setup) setups.push(out.setup);
  if (setups.length > 1) {
    out.setup = setups.map((script) => `{\n${script}\n}`).join(" && ");
  } else if (setups.length === 1) {
    out.setup = setups[0];
  }
  out.copy_files = [...new Set([...files, ...out.copy_files])];
}
