import type { Config } from "./config.js";

// The environment side of the config, without zod: which variables set which key, and which
// carry runyard's own credentials. Kept apart from the schema (config.ts) so that what starts
// steps (exec/process/process.ts) and `runyard run` do not load zod to know them.

/** env name -> config key; the first name found wins. */
export const envNames: Record<keyof Config, string[]> = {
  home: ["RUNYARD_HOME"],
  logLevel: ["RUNYARD_LOG_LEVEL", "RUNNER_LOG_LEVEL"],
  logFormat: ["RUNYARD_LOG_FORMAT"],
  killGraceMs: ["RUNYARD_KILL_GRACE_MS"],
  runTmpKeepSecs: ["RUNYARD_RUN_TMP_KEEP_SECS"],
  sandboxPool: ["RUNYARD_SANDBOX_POOL"],
  sandboxClones: ["RUNYARD_SANDBOX_CLONES"],
  runPidsMax: ["RUNYARD_RUN_PIDS_MAX"],
  acceptGraceMs: ["RUNYARD_ACCEPT_GRACE_MS"],
  spoolMaxBytes: ["RUNYARD_SPOOL_MAX_BYTES"],
  spoolMinFreeBytes: ["RUNYARD_SPOOL_MIN_FREE_BYTES"],
  // The avtomatika-bot CLI's names too (`AVTOMATIKA_URL`, `AVTOMATIKA_TOKEN`), after runyard's own.
  serverUrl: ["RUNYARD_SERVER_URL", "ADOS_API_URL", "AVTOMATIKA_URL"],
  token: ["RUNYARD_TOKEN", "ADOS_TOKEN", "AVTOMATIKA_TOKEN"],
  adminToken: ["RUNYARD_ADMIN_TOKEN"],
  runnerId: ["RUNYARD_RUNNER_ID", "ADOS_RUNNER_ID"],
  workspaceDir: ["RUNYARD_WORKSPACE_DIR", "WORKSPACE_DIR"],
  gitRetryCount: ["RUNYARD_GIT_RETRY_COUNT"],
  networkRetryCount: ["RUNYARD_NETWORK_RETRY_COUNT"],
  llmRetryCount: ["RUNYARD_LLM_RETRY_COUNT"],
  maxTurnSecs: ["RUNYARD_MAX_TURN_SECS", "RUNNER_TIMEOUT"],
  llmModel: ["RUNYARD_LLM_MODEL"],
  llmEndpoint: [],
  gitTokenEnvVar: [],
  llmApiKeyEnvVar: [],
  taskRegistryUrl: ["TASK_REGISTRY_URL"],
  repoPoolUrl: ["REPO_POOL_URL"],
  artifactStoreUrl: ["ARTIFACT_STORE_URL"],
  configFileNotices: [],
  mode: ["RUNYARD_MODE", "ADOS_MODE"],
  group: ["RUNYARD_GROUP", "ADOS_GROUP"],
  labels: ["RUNYARD_LABELS"],
  capacity: ["RUNYARD_CAPACITY"],
  cpus: ["RUNYARD_CPUS", "ADOS_CPUS"],
  memory: ["RUNYARD_MEMORY", "ADOS_MEMORY"],
  hostname: ["RUNYARD_HOSTNAME", "ADOS_HOSTNAME"],
  tenantId: ["RUNYARD_TENANT_ID", "ADOS_TENANT_ID"],
  shared: ["RUNYARD_SHARED"],
  sandbox: ["RUNYARD_SANDBOX"],
  host: ["RUNYARD_HOST"],
  port: ["RUNYARD_PORT"],
  heartbeatMs: ["RUNYARD_HEARTBEAT_MS"],
  leaseMs: ["RUNYARD_LEASE_MS"],
  reconnectGraceMs: ["RUNYARD_RECONNECT_GRACE_MS"],
  replicaHeartbeatMs: ["RUNYARD_REPLICA_HEARTBEAT_MS"],
  replicaLeaseMs: ["RUNYARD_REPLICA_LEASE_MS"],
  replicaSweepMs: ["RUNYARD_REPLICA_SWEEP_MS"],
  shutdownGraceMs: ["RUNYARD_SHUTDOWN_GRACE_MS"],
  sessionTtlMs: ["RUNYARD_SESSION_TTL_MS"],
  secretKey: ["RUNYARD_SECRET_KEY"],
  databaseUrl: ["RUNYARD_DATABASE_URL"],
  databaseWaitSeconds: ["RUNYARD_DATABASE_WAIT"],
  maxRunLogBytes: ["RUNYARD_MAX_RUN_LOG_BYTES"],
  maxWorkflowBytes: ["RUNYARD_MAX_WORKFLOW_BYTES"],
  maxArtifactBytes: ["RUNYARD_MAX_ARTIFACT_BYTES"],
  maxRunArtifactBytes: ["RUNYARD_MAX_RUN_ARTIFACT_BYTES"],
  defaultMaxConcurrentRuns: ["RUNYARD_DEFAULT_MAX_CONCURRENT_RUNS"],
  defaultMaxQueuedRuns: ["RUNYARD_DEFAULT_MAX_QUEUED_RUNS"],
  maxBotsPerUser: ["RUNYARD_MAX_BOTS_PER_USER", "MAX_BOTS_PER_USER"],
  botLifetimeSecs: ["RUNYARD_BOT_LIFETIME_SECS"],
  botMemoryMb: ["RUNYARD_BOT_MEMORY_MB"],
  botCpus: ["RUNYARD_BOT_CPUS"],
  botPids: ["RUNYARD_BOT_PIDS"],
  botNetwork: ["RUNYARD_BOT_NETWORK", "DOCKER_NETWORK"],
  maxBotUploadBytes: ["RUNYARD_MAX_BOT_UPLOAD_BYTES"],
  maxBotLogBytes: ["RUNYARD_MAX_BOT_LOG_BYTES"],
  botAlertCheckSecs: ["RUNYARD_BOT_ALERT_CHECK_SECS"],
  botHookBurst: ["RUNYARD_BOT_HOOK_BURST"],
  botHookWindowSecs: ["RUNYARD_BOT_HOOK_WINDOW_SECS"],
  auditRetentionDays: ["RUNYARD_AUDIT_RETENTION_DAYS"],
  idempotencyKeyHours: ["RUNYARD_IDEMPOTENCY_KEY_HOURS"],
  retryFor: ["RUNYARD_RETRY_FOR"],
  scheduleMinIntervalSeconds: ["RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS"],
  scheduleOnTimeMs: ["RUNYARD_SCHEDULE_ON_TIME_MS"],
  parseBudgetMs: ["RUNYARD_PARSE_BUDGET_MS"],
  scheduleMaxRunsPerHour: ["RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR"],
  quotas: [],
  budgets: [],
  repos: [],
  directHosts: [],
  notifyHosts: [],
  mcpHosts: [],
  agentCwdRoots: ["RUNYARD_AGENT_CWD_ROOTS"],
  agentSandbox: ["RUNYARD_AGENT_SANDBOX"],
  agentSandboxNetwork: ["RUNYARD_AGENT_SANDBOX_NETWORK"],
  agentSandboxImages: ["RUNYARD_AGENT_SANDBOX_IMAGES"],
  agentSandboxMaxMemory: ["RUNYARD_AGENT_SANDBOX_MAX_MEMORY"],
  agentSandboxMaxCpus: ["RUNYARD_AGENT_SANDBOX_MAX_CPUS"],
  agentSandboxMaxPids: ["RUNYARD_AGENT_SANDBOX_MAX_PIDS"],
  agentSandboxAllow: ["RUNYARD_AGENT_SANDBOX_ALLOW"],
  agentKubernetes: ["RUNYARD_AGENT_KUBERNETES"],
  k8sNamespace: ["RUNYARD_K8S_NAMESPACE"],
  k8sImage: ["RUNYARD_K8S_IMAGE"],
  k8sSecrets: ["RUNYARD_K8S_SECRETS"],
  k8sContext: ["RUNYARD_K8S_CONTEXT"],
  k8sWorkspaceClaim: ["RUNYARD_K8S_WORKSPACE_CLAIM"],
  k8sWorkspacePath: ["RUNYARD_K8S_WORKSPACE_PATH"],
  k8sNodeName: ["RUNYARD_K8S_NODE_NAME"],
  k8sPullTimeoutMs: ["RUNYARD_K8S_PULL_TIMEOUT"],
  k8sScheduleTimeoutMs: ["RUNYARD_K8S_SCHEDULE_TIMEOUT"],
  agentMaxMemoryMb: ["RUNYARD_AGENT_MAX_MEMORY_MB"],
  agentMaxCpuPercent: ["RUNYARD_AGENT_MAX_CPU_PERCENT"],
  stepCwdRoots: ["RUNYARD_STEP_CWD_ROOTS"],
  agentFilesDir: ["RUNYARD_AGENT_FILES_DIR"],
  agentRepos: [],
  stepNetworkAllow: [],
  stepPassEnv: ["RUNYARD_STEP_PASS_ENV"],
  corsOrigins: ["RUNYARD_CORS_ORIGINS"],
  executor: ["RUNYARD_EXECUTOR"],
  jobNamespace: ["RUNYARD_JOB_NAMESPACE"],
  jobImage: ["RUNYARD_JOB_IMAGE"],
  jobMemory: ["RUNYARD_JOB_MEMORY"],
  jobCpus: ["RUNYARD_JOB_CPUS"],
};

/** Environment names that carry runyard's own credentials: steps never inherit them. */
export const credentialEnvNames: readonly string[] = [
  ...envNames.token,
  ...envNames.adminToken,
  ...envNames.secretKey,
  ...envNames.databaseUrl,
];

/** `env` without runyard's own credentials, as the base of a step's environment. */
export function withoutCredentials(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && !credentialEnvNames.includes(name)) out[name] = value;
  }
  return out;
}

/**
 * The runner's variables every sandboxed run starts from, whatever its owner: what tools need to
 * find programs and speak the machine's language, nothing that carries a credential.
 */
const runEnvAllowlist: readonly string[] = ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TERM"];

const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/**
 * The environment a sandboxed run's commands start from, before the run's own variables and
 * secrets: of the runner's `env`, only the allowlist (`PATH`, `HOME`, `LANG`, `LC_*`, `TZ`,
 * `TERM`) and the names in `pass` (the operator's `step_pass_env`, given to platform runs only).
 * Never runyard's own credentials. `PATH` and `HOME` are always set.
 */
export function runEnvBase(
  env: Record<string, string | undefined>,
  pass: readonly string[],
  home: string,
): Record<string, string> {
  const out: Record<string, string> = { PATH: defaultPath, HOME: home };
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || credentialEnvNames.includes(name)) continue;
    if (value === "" && (name === "PATH" || name === "HOME")) continue;
    if (runEnvAllowlist.includes(name) || name.startsWith("LC_") || pass.includes(name)) out[name] = value;
  }
  return out;
}

/** What the config is parsed from: each key's raw value and where it came from (a variable, a file or a flag). */
export interface ConfigInput {
  raw: Record<string, unknown>;
  /** key -> the variable, config file key or flag that set it, for error messages. */
  source: Record<string, string>;
}

/**
 * Each key's value from env (the first of its names that is set), with `overrides` laid on top.
 * `sources` names the overrides that did not come from a flag (`config file PATH, key KEY`); the
 * others are named as the flag `--kebab-key`.
 */
export function configInput(
  env: Record<string, string | undefined>,
  overrides: Partial<Record<keyof Config, unknown>> = {},
  sources: Partial<Record<keyof Config, string>> = {},
): ConfigInput {
  const raw: Record<string, unknown> = {};
  const source: Record<string, string> = {};
  for (const [key, names] of Object.entries(envNames)) {
    for (const name of names) {
      const value = env[name];
      if (value !== undefined && value !== "") {
        raw[key] = value;
        source[key] = name;
        break;
      }
    }
  }
  for (const [key, value] of Object.entries(overrides)) {
    if (value !== undefined) {
      raw[key] = value;
      source[key] =
        sources[key as keyof Config] ?? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    }
  }
  return { raw, source };
}
