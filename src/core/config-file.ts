import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";
import { BudgetOverrides, type Config, configSchema, loadConfig, QuotaOverrides } from "./config.js";
import { RunyardError } from "./errors.js";
import { AgentRepoSettings } from "./jobs/agent-tools.js";

/** The ADOS runner's `repos:` routing: which runner group works on which repository. */
export const RepoRoute = z.object({ name: z.string().min(1), work_runner_group: z.string().min(1) });
export type RepoRoute = z.infer<typeof RepoRoute>;

/**
 * The agent runner's config.yaml keys (its `config.yaml`, `config.docker.yaml` and
 * `config.k8s.yaml`). Every key is accepted; what runyard does with each is in docs/agents.md ("The
 * agent runner's config.yaml"). A few are refused after parsing: a key in a file, unmasked secrets,
 * and the executors runyard does not have yet.
 */
const agentRunnerConfigKeys = {
  execution_mode: z.enum(["local-process", "docker", "kubernetes"]),
  default_timeout_seconds: z.number().int().positive(),
  task_registry_url: z.string(),
  repo_pool_url: z.string(),
  artifact_store_url: z.string(),
  llm: z
    .object({
      model: z.string().min(1),
      timeout_seconds: z.number().positive(),
      endpoint: z.string().url().nullable(),
      api_key: z.string().nullable(),
    })
    .partial()
    .strict(),
  git_retry_count: z.number().int().nonnegative(),
  network_retry_count: z.number().int().nonnegative(),
  llm_retry_count: z.number().int().nonnegative(),
  max_memory_mb: z.number().positive().nullable(),
  max_cpu_percent: z.number().positive().nullable(),
  structured_logging: z.boolean(),
  git_token_env_var: z.string().min(1),
  llm_api_key_env_var: z.string().min(1),
  mask_secrets: z.boolean(),
  docker_image: z.string(),
  docker_volumes: z.record(z.string(), z.string()),
  k8s_namespace: z.string(),
  k8s_image: z.string(),
  k8s_secrets: z.array(z.string()),
  k8s_context: z.string(),
  k8s_workspace_claim: z.string(),
  k8s_workspace_path: z.string(),
  k8s_pull_timeout: z.union([z.string(), z.number()]),
  k8s_schedule_timeout: z.union([z.string(), z.number()]),
};

/**
 * The config file (`--config runyard.yaml`): the same settings as the RUNYARD_* variables in
 * snake_case, plus the ADOS runner's `repos:` routing and the agent runner's config.yaml keys.
 * Flags win over the file, the file over env.
 */
const ConfigFile = z
  .object({
    ...agentRunnerConfigKeys,
    home: z.string(),
    log_level: z.string(),
    /** One URL, or replicas: comma-separated or a YAML list. */
    server_url: z.union([z.string(), z.array(z.string())]),
    token: z.string(),
    runner_id: z.string(),
    workspace_dir: z.string(),
    mode: z.string(),
    group: z.string(),
    labels: z.union([z.string(), z.array(z.string())]),
    capacity: z.number(),
    cpus: z.number(),
    memory: z.union([z.string(), z.number()]),
    hostname: z.string(),
    tenant_id: z.string(),
    host: z.string(),
    port: z.number(),
    max_run_log_bytes: z.number(),
    max_workflow_bytes: z.number(),
    /** How often a server replica makes up for lost fleet messages (docs/scale.md). */
    replica_sweep_ms: z.number(),
    repos: z.array(RepoRoute),
    /** Internal destinations members' direct hosts and notify URLs may reach (docs/runners.md). */
    direct_hosts: z.array(z.string()),
    notify_hosts: z.array(z.string()),
    mcp_hosts: z.array(z.string()),
    /** The audit log: how many days its entries are kept. */
    audit: z.object({ retention_days: z.number().int().positive() }).partial().strict(),
    /** Folders members' agent tasks may work in (docs/agents.md, "Where an agent may work"). */
    agent_cwd_roots: z.array(z.string()),
    agent_sandbox: z.string(),
    agent_sandbox_network: z.string(),
    agent_sandbox_allow: z.array(z.string()),
    /** Images a task's sandbox may name besides the default (docs/agents.md, "Sandboxed agents"). */
    agent_sandbox_images: z.array(z.string()),
    agent_sandbox_max_memory: z.union([z.string(), z.number()]),
    agent_sandbox_max_cpus: z.number(),
    agent_sandbox_max_pids: z.number(),
    /** The folder agent tasks' copy_files come from, and per repository pattern their MCP servers, setup and files (docs/agents.md). */
    agent_files_dir: z.string(),
    agent_repos: z.array(AgentRepoSettings),
    /** Folders where sandboxed steps may work besides the runner's working folder (docs/security.md). */
    step_cwd_roots: z.array(z.string()),
    /** Per tenant id, the internal destinations its steps may reach on a shared runner (docs/security.md). */
    step_network_allow: z.record(z.string(), z.array(z.string())),
    /** Variables of the runner's env that platform runs' sandboxed steps get (docs/security.md). */
    step_pass_env: z.array(z.string()),
    /** Where the runner's workflow steps run (docs/scale.md, "The Kubernetes executor"). */
    executor: z.enum(["process", "kubernetes"]),
    job_namespace: z.string(),
    job_image: z.string(),
    job_memory: z.union([z.string(), z.number()]),
    job_cpus: z.number(),
    /** Server quotas: defaults for every tenant and user, and per-tenant and per-user limits. */
    quotas: QuotaOverrides.extend({
      default_max_concurrent_runs: z.number().int().nonnegative(),
      default_max_queued_runs: z.number().int().nonnegative(),
      max_bots_per_user: z.number().int().nonnegative(),
    })
      .partial()
      .strict(),
    /** Agents' spend budgets per tenant and user, in US dollars per UTC day and month. */
    budgets: BudgetOverrides,
  })
  .partial()
  .strict();

type Overrides = Partial<Record<keyof Config, unknown>>;

export interface LoadedConfigFile {
  overrides: Overrides;
  /** Each override's key as the file writes it (`capacity`, `audit.retention_days`), to name it in errors. */
  sources: Partial<Record<keyof Config, string>>;
  repos: RepoRoute[];
}

export function readConfigFile(path: string): LoadedConfigFile {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, "utf8")) ?? {};
  } catch (error) {
    throw new RunyardError("INVALID_INPUT", `cannot read config file ${path}: ${(error as Error).message}`);
  }
  const parsed = ConfigFile.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`);
    throw new RunyardError("INVALID_INPUT", `config file ${path}: ${problems.join("; ")}`, {
      hint: "Keys are the RUNYARD_* settings in snake_case (group, labels, capacity, ...), repos, quotas and audit (docs/security.md), budgets (docs/agents.md), direct_hosts, notify_hosts and mcp_hosts (docs/runners.md), agent_cwd_roots and the agent runner's config.yaml keys (docs/agents.md), step_cwd_roots, step_network_allow and step_pass_env (docs/security.md), executor, job_namespace, job_image, job_memory, job_cpus and replica_sweep_ms (docs/scale.md).",
    });
  }
  const file = parsed.data;
  const refused = agentRunnerConfigRefusals(file);
  if (refused.length > 0) {
    throw new RunyardError(
      "INVALID_INPUT",
      `config file ${path}: ${refused.map((r) => r.problem).join("; ")}`,
      { hint: refused.map((r) => r.hint).join(" ") },
    );
  }
  const { default_max_concurrent_runs, default_max_queued_runs, max_bots_per_user, ...quotas } =
    file.quotas ?? {};
  // The settings the file writes under another name or shape: each with the key it came from.
  const mapped: [keyof Config, string, unknown][] = [
    ["serverUrl", "server_url", Array.isArray(file.server_url) ? file.server_url.join(",") : file.server_url],
    ["labels", "labels", Array.isArray(file.labels) ? file.labels.join(",") : file.labels],
    ["memory", "memory", file.memory === undefined ? undefined : String(file.memory)],
    ["auditRetentionDays", "audit.retention_days", file.audit?.retention_days],
    ["defaultMaxConcurrentRuns", "quotas.default_max_concurrent_runs", default_max_concurrent_runs],
    ["defaultMaxQueuedRuns", "quotas.default_max_queued_runs", default_max_queued_runs],
    ["maxBotsPerUser", "quotas.max_bots_per_user", max_bots_per_user],
    ["quotas", "quotas", Object.keys(quotas).length > 0 ? quotas : undefined],
    [
      "agentSandbox",
      file.agent_sandbox === undefined ? "docker_image" : "agent_sandbox",
      file.agent_sandbox ?? (file.execution_mode === "docker" ? file.docker_image : undefined),
    ],
    // The Kubernetes mode's settings (docs/agents.md, "Kubernetes mode").
    [
      "agentKubernetes",
      "execution_mode",
      file.execution_mode === undefined ? undefined : file.execution_mode === "kubernetes",
    ],
    [
      "k8sPullTimeoutMs",
      "k8s_pull_timeout",
      file.k8s_pull_timeout === undefined ? undefined : String(file.k8s_pull_timeout),
    ],
    [
      "k8sScheduleTimeoutMs",
      "k8s_schedule_timeout",
      file.k8s_schedule_timeout === undefined ? undefined : String(file.k8s_schedule_timeout),
    ],
    ["agentMaxMemoryMb", "max_memory_mb", file.max_memory_mb ?? undefined],
    ["agentMaxCpuPercent", "max_cpu_percent", file.max_cpu_percent ?? undefined],
    ["maxTurnSecs", "default_timeout_seconds", file.default_timeout_seconds],
    ["llmModel", "llm.model", file.llm?.model],
    ["llmEndpoint", "llm.endpoint", file.llm?.endpoint ?? undefined],
  ];
  const { overrides, sources } = sameNamedSettings(file);
  for (const [setting, key, value] of mapped) {
    overrides[setting] = value;
    if (value === undefined) delete sources[setting];
    else sources[setting] = key;
  }
  overrides.configFileNotices = agentRunnerConfigNotices(file);
  return { overrides, sources, repos: file.repos ?? [] };
}

/**
 * The config from env, the config file at `path` and `flags`, each laid over the one before. A
 * bad value is named by where it came from: its variable, `config file PATH, key KEY`, or its flag.
 */
export function loadConfigWithFile(
  env: Record<string, string | undefined>,
  flags: Overrides,
  path?: string,
): Config {
  const file = path ? readConfigFile(path) : undefined;
  const overrides: Overrides = { ...file?.overrides };
  const sources: Partial<Record<keyof Config, string>> = {};
  for (const [setting, key] of Object.entries(file?.sources ?? {}))
    sources[setting as keyof Config] = `config file ${path}, key ${key}`;
  for (const [setting, value] of Object.entries(flags)) {
    if (value === undefined) continue;
    overrides[setting as keyof Config] = value;
    delete sources[setting as keyof Config];
  }
  return loadConfig(env, overrides, sources);
}

type ParsedFile = z.infer<typeof ConfigFile>;

/**
 * The file's keys that are a setting's name in snake_case (`tenant_id`, `k8s_image`), as that
 * setting; readConfigFile lays the keys the file writes otherwise over them.
 */
function sameNamedSettings(file: ParsedFile): Pick<LoadedConfigFile, "overrides" | "sources"> {
  const overrides: Overrides = {};
  const sources: Partial<Record<keyof Config, string>> = {};
  for (const [key, value] of Object.entries(file)) {
    const setting = key.replace(/_([a-z0-9])/g, (_, letter: string) => letter.toUpperCase());
    if (setting in configSchema.shape) {
      overrides[setting as keyof Config] = value;
      sources[setting as keyof Config] = key;
    }
  }
  return { overrides, sources };
}

/** The agent runner's settings runyard will not take silently: each with what to do instead. */
function agentRunnerConfigRefusals(file: ParsedFile): { problem: string; hint: string }[] {
  const refused: { problem: string; hint: string }[] = [];
  if (file.execution_mode === "docker" && !file.docker_image && !file.agent_sandbox) {
    refused.push({
      problem: "execution_mode docker needs docker_image: the image agents run in",
      hint: "Add docker_image: NAME:TAG, an image on the runner with the agent CLIs or node (docker/agent.Dockerfile builds one); docs/agents.md (Sandboxed agents).",
    });
  } else if (file.execution_mode === "kubernetes" && !file.k8s_image) {
    refused.push({
      problem: "execution_mode kubernetes needs k8s_image: the image each agent turn's pod runs",
      hint: "Add k8s_image: REGISTRY/NAME:TAG, an image with Node, git and a shell that the cluster's nodes can pull (docker/agent.Dockerfile builds one); docs/agents.md (Kubernetes mode).",
    });
  }
  if (file.llm?.api_key) {
    refused.push({
      problem: "llm.api_key: API keys do not belong in a config file",
      hint: "Set OPENAI_API_KEY in the runner's environment (or name another variable with llm_api_key_env_var), or store it with `runyard secret set OPENAI_API_KEY` and give it to runs with --secret OPENAI_API_KEY.",
    });
  }
  if (file.mask_secrets === false) {
    refused.push({
      problem: "mask_secrets: false: masking cannot be turned off",
      hint: "Remove mask_secrets (or set it to true): runyard always masks credentials in events, logs and artifacts.",
    });
  }
  return refused;
}

/** One line per agent runner setting runyard accepts from a file but does otherwise. */
function agentRunnerConfigNotices(file: ParsedFile): string[] {
  const notices: string[] = [];
  if (file.llm?.timeout_seconds !== undefined) {
    notices.push(
      "llm.timeout_seconds is ignored: a model call that goes quiet is cut by the task's stall limit (stall_secs, default 120 s), the whole turn by its timeout",
    );
  }
  const kubernetes = file.execution_mode === "kubernetes";
  for (const [key, value] of [
    ["max_memory_mb", file.max_memory_mb],
    ["max_cpu_percent", file.max_cpu_percent],
  ] as const) {
    // Kubernetes turns are held to them: they are their pods' limits.
    if (value !== undefined && value !== null && !kubernetes) {
      notices.push(
        `${key} is not enforced yet: each agent's memory peak and CPU time are measured and reported in its result, not capped`,
      );
    }
  }
  if (file.structured_logging === false) {
    notices.push("structured_logging: false is ignored: runyard always logs JSON lines");
  }
  const docker = file.execution_mode === "docker";
  // The file's keys in the order of its schema: docker_image, then every k8s_* key.
  const unused = Object.keys(file).filter(
    (key) => (key === "docker_image" && !docker) || (key.startsWith("k8s_") && !kubernetes),
  );
  if (unused.length > 0) {
    const how = kubernetes
      ? "agents run as Kubernetes Jobs (execution_mode kubernetes)"
      : docker
        ? "agents run in Docker containers (execution_mode docker)"
        : "agents run as local processes (execution_mode local-process)";
    notices.push(`${unused.join(", ")} unused: ${how}`);
  }
  if (file.docker_volumes !== undefined) {
    notices.push(
      "docker_volumes is ignored: a sandboxed agent's container gets its task's worktree mounted at the same path, and nothing else of the runner",
    );
  }
  return notices;
}

/**
 * What a runner warns about once at start: the config file's notices, and the agent runner's
 * settings from any source (env too) that runyard accepts but does otherwise.
 */
export function runnerNotices(config: Config, env: Record<string, string | undefined>): string[] {
  const notices = [...config.configFileNotices];
  const services = [
    ["task_registry_url", config.taskRegistryUrl],
    ["repo_pool_url", config.repoPoolUrl],
    ["artifact_store_url", config.artifactStoreUrl],
  ].filter(([, url]) => url !== undefined);
  if (services.length > 0) {
    notices.push(
      `${services.map(([key]) => key).join(", ")} ignored: the runyard server keeps runs, events and artifacts, and the runner its own git worktrees`,
    );
  }
  if (config.gitTokenEnvVar && !env[config.gitTokenEnvVar]) {
    notices.push(
      `git_token_env_var names ${config.gitTokenEnvVar}, which is not set: tasks that give no git token get none`,
    );
  }
  if (config.llmApiKeyEnvVar && !env[config.llmApiKeyEnvVar]) {
    notices.push(
      `llm_api_key_env_var names ${config.llmApiKeyEnvVar}, which is not set: agents get no OPENAI_API_KEY from it`,
    );
  }
  return notices;
}

/** The runner group a repository's work goes to, per `repos:`; undefined when unrouted. */
export function groupForRepo(repos: RepoRoute[], repo: string): string | undefined {
  const name =
    repo
      .replace(/\.git$/, "")
      .split(/[/:]/)
      .pop() ?? repo;
  return repos.find((route) => route.name === repo || route.name === name)?.work_runner_group;
}
