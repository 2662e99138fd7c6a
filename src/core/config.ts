import { homedir, hostname } from "node:os";
import { resolve } from "node:path";
import { z } from "zod";
import { configInput } from "./config-env.js";
import { ConfigError } from "./config-error.js";
import {
  commaList,
  destinationList,
  durationMsOf,
  durationSeconds,
  folderList,
  logLevelOf,
  memorySize,
  passEnvNameProblem,
  switchOf,
} from "./config-values.js";
import { corsOriginProblem } from "./cors-origins.js";
import { AgentRepoSettings } from "./jobs/agent-tools.js";
import { runConfigShape } from "./run-config-schema.js";

const mib = (n: number): number => n * 1024 * 1024;
const gib = (n: number): number => mib(n * 1024);
const hoursMs = (n: number): number => n * 3_600_000;

/** What a run's stored log holds unless `maxRunLogBytes` says otherwise. */
export const defaultMaxRunLogBytes = mib(100);
/** The largest artifact a runner may upload unless `maxArtifactBytes` says otherwise. */
export const defaultMaxArtifactBytes = mib(16);
/** What the artifacts of one run hold together unless `maxRunArtifactBytes` says otherwise. */
export const defaultMaxRunArtifactBytes = mib(64);

/** One tenant's or user's limits (`quotas.tenants.<id>`, `quotas.users.<name>`); absent: the default. */
export const QuotaLimits = z
  .object({
    /** Runs running at once; a submit while this many run is refused (QUOTA_EXCEEDED). */
    max_concurrent_runs: z.number().int().nonnegative(),
    /** Runs waiting for a runner at once; a submit while this many wait is refused. */
    max_queued_runs: z.number().int().nonnegative(),
    /** Bots alive at once (the avtomatika-bot limit: 3 per user). Users only. */
    max_bots: z.number().int().nonnegative(),
    /** A bot container's memory in MiB (the avtomatika-bot limits: 256), CPUs (0.5) and processes (100). */
    bot_memory_mb: z.number().int().positive(),
    bot_cpus: z.number().positive(),
    bot_pids: z.number().int().positive(),
  })
  .partial()
  .strict();
export type QuotaLimits = z.infer<typeof QuotaLimits>;

/** The per-tenant and per-user limits of the config file's `quotas:` section. */
export const QuotaOverrides = z
  .object({
    tenants: z.record(z.string().min(1), QuotaLimits.omit({ max_bots: true })),
    users: z.record(z.string().min(1), QuotaLimits),
  })
  .partial()
  .strict();
export type QuotaOverrides = z.infer<typeof QuotaOverrides>;

/** One tenant's or user's spend limits in US dollars (`budgets.tenants.<id>`, `budgets.users.<name>`). */
export const BudgetLimitsSchema = z
  .object({
    /** Agents' spend per UTC day; a turn that would start past it is refused (BUDGET_EXCEEDED). */
    usd_per_day: z.number().nonnegative().finite(),
    /** Agents' spend per UTC calendar month. */
    usd_per_month: z.number().nonnegative().finite(),
  })
  .partial()
  .strict();

/** The config file's `budgets:` section; a budget set through the API wins over it. */
export const BudgetOverrides = z
  .object({
    tenants: z.record(z.string().min(1), BudgetLimitsSchema),
    users: z.record(z.string().min(1), BudgetLimitsSchema),
    /**
     * What an agent turn without a dollar budget of its own reserves of what is left as it starts
     * (returned, less its spend, as it ends); unset: all, so near the end one turn runs at a time.
     */
    turn_reservation_usd: z.number().positive().finite(),
  })
  .partial()
  .strict();
export type BudgetOverrides = z.infer<typeof BudgetOverrides>;

/**
 * The one config schema, parsed once at start-up from the environment (with flags and a config file
 * laid over it); nothing else reads process.env. ADOS_* names (and the avtomatika-bot CLI's
 * AVTOMATIKA_URL / AVTOMATIKA_TOKEN) are aliases of the RUNYARD_* ones.
 */
export const configSchema = z.object({
  /** killGraceMs, serverUrl, token, maxWorkflowBytes: what `runyard run` reads (run-config-schema.ts). */
  ...runConfigShape,
  /** Where runyard keeps its database, artifacts and workspaces. */
  home: z.string().default(".runyard"),
  /** pino level (fatal … trace, silent), any case; also Python's `INFO`, `WARNING`, `CRITICAL`. */
  logLevel: z.preprocess(
    logLevelOf,
    z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("warn"),
  ),
  /** A daemon's log and status lines: `text`, `json` (one a line), `auto`: text on a terminal, else JSON. */
  logFormat: z.enum(["auto", "text", "json"]).default("auto"),
  /**
   * A sandboxed runner removes a run's folders (its own, /tmp, `$HOME`) when the server says the run
   * ended; a server older than `run_ended` never says so, and then they go this many seconds after the
   * run's last job there ended: long, so that a run that waits (an approval, steps elsewhere) keeps them.
   */
  runTmpKeepSecs: z.coerce.number().int().min(0).max(604_800).default(21_600),
  /** Sandboxes a runner makes ahead, so a first step need not wait for bubblewrap; 0: none ahead. */
  sandboxPool: z.coerce.number().int().min(0).max(64).default(2),
  /**
   * Runs' sandboxes cloned from a template bubblewrap makes once (docs/security.md, "What the
   * sandbox costs a step"), where the kernel allows; off: bubblewrap makes each.
   */
  sandboxClones: z.preprocess(switchOf, z.boolean({ error: "must be 1 or 0 (true or false)" }).default(true)),
  /**
   * The most processes a run's sandbox may hold at once, its steps and all they start (`pids.max` of its
   * own cgroup), so a fork bomb stays there; 0: no limit. A runner that cannot make cgroups says so.
   */
  runPidsMax: z.coerce.number().int().min(0).max(4_194_304).default(4096),
  /**
   * Runner: how long a job's accept waits for its first output or its end to carry it (one message
   * less a job); a silent step's start is stored this much later. 0: the accept goes at once.
   */
  acceptGraceMs: z.coerce.number().int().min(0).max(10_000).default(50),
  /** Runner: output its jobs may spool while the server cannot take it (1 GiB a job); past it, dropped. */
  spoolMaxBytes: z.coerce.number().int().positive().default(gib(10)),
  /** Runner: the free space the spool always leaves on its disk; output past it is dropped likewise. */
  spoolMinFreeBytes: z.coerce.number().int().nonnegative().default(gib(1)),
  /** Admin token to create on first start instead of a random one. */
  adminToken: z.string().optional(),
  runnerId: z.string().optional(),
  workspaceDir: z.string().optional(),
  /** Retries of git fetches and pushes, with exponential backoff (the agent runner's `git_retry_count`). */
  gitRetryCount: z.coerce.number().int().min(0).max(20).default(3),
  /** Retries of an agent's artifact upload on a server error or no server (`network_retry_count`). */
  networkRetryCount: z.coerce.number().int().min(0).max(20).default(3),
  /** Retries of a built-in `openai` loop's model call on 429, 5xx and network errors (`llm_retry_count`). */
  llmRetryCount: z.coerce.number().int().min(0).max(20).default(3),
  /** Runner: the longest agent turn; a task asking longer is cut to it (`default_timeout_seconds`). */
  maxTurnSecs: z.coerce.number().int().positive().optional(),
  /** Runner: the built-in `openai` loop's model when a task names none (`llm.model`). */
  llmModel: z.string().min(1).optional(),
  /** Runner: the built-in `openai` loop's OPENAI_BASE_URL when a task gives none (`llm.endpoint`). */
  llmEndpoint: z.string().url().optional(),
  /** Runner: the env variable holding the git token of tasks that give none (`git_token_env_var`). */
  gitTokenEnvVar: z.string().min(1).optional(),
  /** Runner: the env variable whose value agents get as OPENAI_API_KEY; unset: OPENAI_API_KEY itself. */
  llmApiKeyEnvVar: z.string().min(1).optional(),
  /** The agent runner's external services; runyard has none, and reads these only to warn of that. */
  taskRegistryUrl: z.string().optional(),
  repoPoolUrl: z.string().optional(),
  artifactStoreUrl: z.string().optional(),
  /** One-line warnings about config file settings runyard accepts but does otherwise (config file only). */
  configFileNotices: z.array(z.string()).default([]),
  mode: z.enum(["chat", "issue", "all"]).default("all"),
  group: z.string().default("default"),
  labels: z
    .string()
    .default("")
    .transform((s) =>
      s
        .split(",")
        .map((label) => label.trim())
        .filter(Boolean),
    ),
  capacity: z.coerce.number().int().positive().default(2),
  cpus: z.coerce.number().positive().optional(),
  memory: z.string().optional(),
  hostname: z.string().default(hostname()),
  tenantId: z.string().optional(),
  /**
   * Runner: offered to every tenant (`--shared`), not only to runs outside any tenant. It must isolate
   * each run (bubblewrap); a runner that cannot refuses to start.
   */
  shared: z.preprocess(switchOf, z.boolean({ error: "must be 1 or 0 (true or false)" }).default(false)),
  /**
   * Runner: `auto` sandboxes steps and agent turns with bubblewrap where it works, on a runner serving
   * more than one principal and on `runyard up`'s; `off` never does.
   */
  sandbox: z.enum(["auto", "off"]).default("auto"),
  /** Server: address to bind; 127.0.0.1 unless told otherwise (docs/security.md). */
  host: z.string().default("127.0.0.1"),
  port: z.coerce.number().int().min(0).max(65535).default(8088),
  /** Server: how often runners heartbeat, and how long a silent runner keeps its jobs. */
  heartbeatMs: z.coerce.number().int().positive().default(2000),
  leaseMs: z.coerce.number().int().positive().default(10_000),
  /** Server replicas: how often each says it is alive; how long before a silent one's runs are adopted. */
  replicaHeartbeatMs: z.coerce.number().int().positive().default(1000),
  replicaLeaseMs: z.coerce.number().int().positive().default(10_000),
  /**
   * Server replicas: how often each rereads from the database what a lost fleet message would have
   * told it (a revoked runner token, a job's row, a queued job, a cancel, a followed run's events).
   * Each sweep reads the database, hence the floor; past the ceiling a lost message is barely made up.
   */
  replicaSweepMs: z.coerce
    .number({ error: "must be a whole number of milliseconds, like 2000 (the default)" })
    .int("must be a whole number of milliseconds, like 2000 (the default)")
    .min(100, "must be at least 100 (ms): each sweep reads the database; the default is 2000")
    .max(3_600_000, "must be at most 3600000 (an hour): a lost message waits that long; the default is 2000")
    .default(2000),
  /** Server: after a restart, how long runs wait for their runners to come back. */
  reconnectGraceMs: z.coerce.number().int().nonnegative().default(20_000),
  /** up, server, runner: on SIGTERM, how long running steps may go on before they are cut. */
  shutdownGraceMs: z.coerce.number().int().nonnegative().default(30_000),
  /** Server: how long a login session (`POST /api/auth/login`) lasts; default 12 hours. */
  sessionTtlMs: z.coerce.number().int().positive().default(hoursMs(12)),
  /** Server: the key encrypting job env, exports and run vars at rest; unset: made in `<home>/secret.key`. */
  secretKey: z.string().min(32, "must be at least 32 characters (try `openssl rand -base64 32`)").optional(),
  /** Server: a PostgreSQL URL (`postgres://user:password@host:5432/runyard`) several servers may share. */
  databaseUrl: z
    .string()
    .regex(/^postgres(ql)?:\/\//i, "must be a postgres:// or postgresql:// URL")
    .optional(),
  /**
   * Server: how long a start waits for a PostgreSQL that is down or recovering (RUNYARD_DATABASE_WAIT:
   * seconds, or `90s`, `5m`, `1h`); 0 does not wait.
   */
  databaseWaitSeconds: z.preprocess(
    durationSeconds,
    z
      .number({ error: "must be seconds, or a number with s, m or h (e.g. 300, 90s, 5m)" })
      .int()
      .nonnegative()
      .default(300),
  ),
  /**
   * Server: output bytes stored per run (`runs logs`, SSE replay); past it output is dropped with a
   * notice of how much. `output_path` files keep everything. 0: no cap.
   */
  maxRunLogBytes: z.coerce.number().int().nonnegative().default(defaultMaxRunLogBytes),
  /**
   * Server: the largest artifact a runner may upload; larger is refused (413). Artifacts live in the
   * database, so this bounds the rows every replica reads (docs/artifacts.md).
   */
  maxArtifactBytes: z.coerce.number().int().positive().default(defaultMaxArtifactBytes),
  /** Server: the artifacts of one run together; an upload past it is refused (413). */
  maxRunArtifactBytes: z.coerce.number().int().positive().default(defaultMaxRunArtifactBytes),
  /** Server quotas (docs/security.md) of tenants and users `quotas:` does not name; unset: no limit. */
  defaultMaxConcurrentRuns: z.coerce.number().int().nonnegative().optional(),
  defaultMaxQueuedRuns: z.coerce.number().int().nonnegative().optional(),
  /** Bots alive at once per user (the avtomatika-bot's MAX_BOTS_PER_USER). */
  maxBotsPerUser: z.coerce.number().int().nonnegative().default(3),
  /** Server: a bot's lifetime in seconds (avtomatika-bot's: 24 h); past it the bot ends `timeout`. */
  botLifetimeSecs: z.coerce.number().int().positive().default(86_400),
  /** Server: a bot container's limits (avtomatika-bot's) unless a tenant's or user's quota says otherwise. */
  botMemoryMb: z.coerce.number().int().positive().default(256),
  botCpus: z.coerce.number().positive().default(0.5),
  botPids: z.coerce.number().int().positive().default(100),
  /** Server: the Docker network bots join (avtomatika-bot's DOCKER_NETWORK), `none` or `host`. */
  botNetwork: z.string().min(1).default("bridge"),
  /** Server: a bot's stored output; past it the oldest lines go, so `bot logs` has the latest. 0: no cap. */
  maxBotLogBytes: z.coerce.number().int().nonnegative().default(mib(8)),
  /** Server: the webhook requests a bot takes in any `botHookWindowSecs` whole seconds, across replicas. */
  botHookBurst: z.coerce.number().int().positive().max(100_000).default(20),
  /** Server: the whole seconds in a row `botHookBurst` is counted over (1 to 60). */
  botHookWindowSecs: z.coerce.number().int().min(1).max(60).default(2),
  /** Server: how often the leader checks bots' samples for their alerts, in seconds. */
  botAlertCheckSecs: z.coerce.number().positive().max(3600).default(5),
  /** Server: the largest custom-mode archive a bot start may upload, in bytes. */
  maxBotUploadBytes: z.coerce.number().int().positive().default(mib(32)),
  /** Server: audit entries older than this many days are pruned hourly (`audit.retention_days`). */
  auditRetentionDays: z.coerce.number().int().positive().default(90),
  /** Server: hours an `Idempotency-Key` and its answer are kept, so a retry is answered, not redone. */
  idempotencyKeyHours: z.coerce.number().positive().max(720).default(24),
  /** CLI: ms a submit is retried (same `Idempotency-Key`) on 503 or a dropped connection; 0: never. */
  retryFor: z.preprocess(
    durationMsOf,
    z
      .number({ error: "expected a duration such as 2m, 90s, 500ms or 0" })
      .int()
      .min(0)
      .max(86_400_000, "at most 24h")
      .default(120_000),
  ),
  /** Server: a schedule's shortest interval in seconds (each tick is a stored row and a run). */
  scheduleMinIntervalSeconds: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Server: a `catch_up: none` tick found more than this many ms after its time is recorded missed. */
  scheduleOnTimeMs: z.coerce.number().int().min(100).max(3_600_000).default(5_000),
  /** Server: how long parsing one workflow may take before it is stopped and refused (docs/security.md). */
  parseBudgetMs: z.coerce.number().int().min(1).max(600_000).default(10_000),
  /** Server: runs an hour a tenant's schedules may start together, checked as a `schedule:` is saved. */
  scheduleMaxRunsPerHour: z.coerce.number().int().min(1).max(1_000_000).default(600),
  /** Per-tenant and per-user quotas; only the config file sets them. */
  quotas: QuotaOverrides.default({}),
  /** Per-tenant and per-user agent spend budgets (docs/agents.md "Spend budgets"); config file only. */
  budgets: BudgetOverrides.default({}),
  /** The ADOS runner's `repos:` (config file only): which runner group works on which repository. */
  repos: z.array(z.object({ name: z.string().min(1), work_runner_group: z.string().min(1) })).default([]),
  /**
   * Server (config file only): internal destinations (loopback, link-local, private) members' workflows
   * may name as a direct host's `address:`; public ones need no entry. Grammar: outbound/destination-list.ts.
   */
  directHosts: destinationList(),
  /** Server (config file only): the same for `notify:` URLs. */
  notifyHosts: destinationList(),
  /** Server (config file only): the same for the `url` of an agent task's MCP servers. */
  mcpHosts: destinationList(),
  /**
   * Server and runner: absolute folders under which a non-admin's agent task may name a `cwd` (YAML
   * list, or colon-separated in env). The server checks at submit; a runner also allows its workspace
   * and checks the real path (links resolved) before the agent starts.
   */
  agentCwdRoots: folderList(),
  /**
   * Runner: the image of agent tasks that name no sandbox (docs/agents.md); unset: they run as
   * processes. Also set by `execution_mode: docker` with `docker_image`.
   */
  agentSandbox: z.string().min(1).optional(),
  /** Runner: a Docker network sandboxed agents join instead of the egress proxy, not held to the model. */
  agentSandboxNetwork: z.string().min(1).optional(),
  /**
   * Runner: images a task's sandbox may name besides `agentSandbox`: exact references (a bare name
   * means `latest`) or `NAME:*` (every tag); comma-separated or a YAML list. Any other image (another
   * tenant's bot image, one somebody pulled) is refused.
   */
  agentSandboxImages: commaList((entry) =>
    /\s/.test(entry) || (entry.includes("*") && !/^[^*]+:\*$/.test(entry))
      ? `"${entry}" is not an image reference (like runyard-agent:2) or NAME:* (every tag of NAME)`
      : undefined,
  ),
  /**
   * Runner: the most a task's sandbox may ask: memory (like 8g; unset: RUNYARD_MEMORY, else the
   * machine's), CPUs (unset: RUNYARD_CPUS, else the machine's), processes (4096). More is refused.
   */
  agentSandboxMaxMemory: memorySize("8g").optional(),
  agentSandboxMaxCpus: z.coerce.number().positive().optional(),
  agentSandboxMaxPids: z.coerce.number().int().positive().default(4096),
  /** Runner: `host:port` destinations sandboxed agents may reach besides the model endpoint (a package mirror). */
  agentSandboxAllow: commaList((entry) =>
    /^(\[[0-9a-fA-F:.]+\]|[^:\s/]+):\d{1,5}$/.test(entry)
      ? undefined
      : `"${entry}" is not host:port (like pypi.example.com:443)`,
  ),
  /** Runner: each agent turn a Kubernetes Job (`execution_mode: kubernetes`), per the `k8s*` settings. */
  agentKubernetes: z.preprocess(switchOf, z.boolean()).default(false),
  /** The namespace of the turns' Jobs (`k8s_namespace`); unset: the credentials' own, else `default`. */
  k8sNamespace: z.string().min(1).optional(),
  /** The image of the turns' pods (`k8s_image`): Node, git and a shell, as docker/agent.Dockerfile builds. */
  k8sImage: z.string().min(1).optional(),
  /** The operator's Secrets every turn's pod gets as env (`k8s_secrets`). */
  k8sSecrets: commaList((name) =>
    /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name) && name.length <= 253
      ? undefined
      : `"${name}" is not a Secret's name (lower-case letters, digits, - and .)`,
  ),
  /** The kubeconfig context (`k8s_context`); unset: the current one. */
  k8sContext: z.string().min(1).optional(),
  /**
   * The PersistentVolumeClaim mounted at `k8sWorkspacePath` (`k8s_workspace_claim`) holding worktrees,
   * agent state and CLIs; each pod mounts what it needs by subPath. Unset: pods get no volume.
   */
  k8sWorkspaceClaim: z.string().min(1).optional(),
  /** Where the runner has the workspace claim mounted (`k8s_workspace_path`); unset: its home. */
  k8sWorkspacePath: z.string().min(1).optional(),
  /** The node the runner's pod is on (set from the downward API): a ReadWriteOnce claim holds the turns there. */
  k8sNodeName: z.string().min(1).optional(),
  /** How long a turn's image may fail to pull before the turn fails (`k8s_pull_timeout`, like 90s). */
  k8sPullTimeoutMs: z.preprocess(
    durationMsOf,
    z.number({ error: "expected a duration such as 2m or 90s" }).int().positive().default(120_000),
  ),
  /** How long a turn's pod may wait for a node (`k8s_schedule_timeout`, like 5m). */
  k8sScheduleTimeoutMs: z.preprocess(
    durationMsOf,
    z.number({ error: "expected a duration such as 5m or 90s" }).int().positive().default(300_000),
  ),
  /** A Kubernetes turn's memory limit in MiB (`max_memory_mb`); unset: 2048. */
  agentMaxMemoryMb: z.coerce.number().positive().optional(),
  /** A Kubernetes turn's CPU limit in percent of one CPU (`max_cpu_percent`, 150 = 1.5 CPUs); unset: 200. */
  agentMaxCpuPercent: z.coerce.number().positive().optional(),
  /**
   * Server and runner: absolute folders under which a confined run's steps may name a `cwd` (YAML list,
   * or colon-separated in env). The server checks at submit; a runner checks the real path (links
   * resolved) against its own list before the step starts, sandbox on or off.
   */
  stepCwdRoots: folderList(),
  /** Runner: the folder a task's `copy_files` come from (docs/agents.md); unset: a task naming them fails. */
  agentFilesDir: z.string().min(1).optional(),
  /** Runner (config file only): per repository pattern, MCP servers, setup and files its tasks get too. */
  agentRepos: z.array(AgentRepoSettings).default([]),
  /**
   * Runner (config file only): per tenant id, internal destinations (loopback, private, link-local,
   * metadata) its steps may reach through a shared runner's egress proxy; public ones need no entry.
   */
  stepNetworkAllow: z.record(z.string().min(1), destinationList()).default({}),
  /**
   * Runner: env variables a sandboxed runner passes to platform runs' (outside any tenant) steps and
   * agent tests besides `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `TERM`; a tenant's run never gets them.
   * Comma-separated or a YAML list. An unsandboxed runner passes its whole env (docs/security.md).
   */
  stepPassEnv: commaList(passEnvNameProblem),
  /** Runner: steps run as `process` (process groups) or `kubernetes` (a Job per attempt; docs/scale.md). */
  executor: z.enum(["process", "kubernetes"]).default("process"),
  /** Runner with the Kubernetes executor: the namespace its step Jobs go in. */
  jobNamespace: z.string().min(1).optional(),
  /** Runner with the Kubernetes executor: the image of a step's pod when the step names none (`image:`). */
  jobImage: z.string().min(1).optional(),
  /** Runner with the Kubernetes executor: each step pod's memory limit (a size like 512m); none by default. */
  jobMemory: memorySize("512m").optional(),
  /** Runner with the Kubernetes executor: each step pod's CPU limit, fractions allowed; none by default. */
  jobCpus: z.coerce.number().positive().optional(),
  /** Server: exact origins (`https://ui.example.com`) whose scripts may call the API; unset: no CORS. */
  corsOrigins: commaList(corsOriginProblem),
});
export type Config = z.infer<typeof configSchema>;

export { ConfigError } from "./config-error.js";

/**
 * Reads the config from env, with `overrides` (flags, config file) laid on top; `sources` names
 * the overrides that are not flags, for errors (configInput).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  overrides: Partial<Record<keyof Config, unknown>> = {},
  sources: Partial<Record<keyof Config, string>> = {},
): Config {
  const { raw, source } = configInput(env, overrides, sources);
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const key = String(issue.path[0] ?? "");
        return `${source[key] ?? key}: ${issue.message}`;
      }),
    );
  }
  return parsed.data;
}

export function resolveHome(config: Pick<Config, "home">, cwd: string): string {
  return resolve(cwd, config.home.replace(/^~(?=$|\/)/, homedir()));
}
