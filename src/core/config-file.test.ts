import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { loadConfig } from "./config.js";
import { groupForRepo, loadConfigWithFile, readConfigFile, runnerNotices } from "./config-file.js";

function file(text: string): string {
  const path = join(tmpdir(), `runyard-config-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return path;
}

describe("config file", () => {
  it("reads the ADOS runner's repos routing and runner settings", () => {
    const loaded = readConfigFile(
      file(
        "group: backend-runners\nlabels: [docker, linux]\ncapacity: 3\nrepos:\n  - name: frontend-app\n    work_runner_group: frontend-runners\n  - name: backend-api\n    work_runner_group: backend-runners\n",
      ),
    );
    expect(loaded.overrides).toMatchObject({ group: "backend-runners", labels: "docker,linux", capacity: 3 });
    expect(groupForRepo(loaded.repos, "frontend-app")).toBe("frontend-runners");
    expect(groupForRepo(loaded.repos, "git@github.com:acme/backend-api.git")).toBe("backend-runners");
    expect(groupForRepo(loaded.repos, "unknown")).toBeUndefined();
  });

  it("reads step_pass_env as a YAML list of names, over RUNYARD_STEP_PASS_ENV", () => {
    const loaded = readConfigFile(file("step_pass_env:\n  - HTTP_PROXY\n  - NPM_CONFIG_REGISTRY\n"));
    expect(loadConfig({ RUNYARD_STEP_PASS_ENV: "OTHER" }, loaded.overrides).stepPassEnv).toEqual([
      "HTTP_PROXY",
      "NPM_CONFIG_REGISTRY",
    ]);
  });

  it("reads replica_sweep_ms over RUNYARD_REPLICA_SWEEP_MS, and refuses one that is not a number", () => {
    const loaded = readConfigFile(file("replica_sweep_ms: 500\n"));
    expect(loadConfig({ RUNYARD_REPLICA_SWEEP_MS: "60000" }, loaded.overrides).replicaSweepMs).toBe(500);
    expect(() => readConfigFile(file("replica_sweep_ms: soon\n"))).toThrowError(/replica_sweep_ms: /);
    expect(() => loadConfig({}, readConfigFile(file("replica_sweep_ms: 0\n")).overrides)).toThrowError(
      /must be at least 100/,
    );
  });

  it("reads server_url as a comma-separated list or a YAML list of replicas", () => {
    expect(readConfigFile(file("server_url: http://a:8088, http://b:8088\n")).overrides.serverUrl).toBe(
      "http://a:8088, http://b:8088",
    );
    expect(
      readConfigFile(file("server_url:\n  - http://a:8088\n  - http://b:8088\n")).overrides.serverUrl,
    ).toBe("http://a:8088,http://b:8088");
  });

  it("reads quotas: defaults, per-tenant and per-user limits; env sets the defaults too", () => {
    const loaded = readConfigFile(
      file(
        "quotas:\n  default_max_concurrent_runs: 4\n  default_max_queued_runs: 20\n  max_bots_per_user: 2\n  tenants:\n    acme: { max_concurrent_runs: 5, max_queued_runs: 50 }\n  users:\n    ana: { max_queued_runs: 3, max_bots: 1 }\n",
      ),
    );
    const config = loadConfig({}, loaded.overrides);
    expect(config).toMatchObject({
      defaultMaxConcurrentRuns: 4,
      defaultMaxQueuedRuns: 20,
      maxBotsPerUser: 2,
      quotas: {
        tenants: { acme: { max_concurrent_runs: 5, max_queued_runs: 50 } },
        users: { ana: { max_queued_runs: 3, max_bots: 1 } },
      },
    });
    const fromEnv = loadConfig({
      RUNYARD_DEFAULT_MAX_CONCURRENT_RUNS: "7",
      RUNYARD_DEFAULT_MAX_QUEUED_RUNS: "9",
      MAX_BOTS_PER_USER: "5",
    });
    expect(fromEnv).toMatchObject({
      defaultMaxConcurrentRuns: 7,
      defaultMaxQueuedRuns: 9,
      maxBotsPerUser: 5,
    });
    expect(loadConfig({})).toMatchObject({ maxBotsPerUser: 3, quotas: {} });
    expect(loadConfig({}).defaultMaxQueuedRuns).toBeUndefined();
    expect(() => readConfigFile(file("quotas:\n  tenants:\n    acme: { max_runs: 5 }\n"))).toThrowError(
      /max_runs/,
    );
  });

  it("reads budgets: turn_reservation_usd beside the limits; one of zero or less is refused, naming it", () => {
    const loaded = readConfigFile(
      file("budgets:\n  turn_reservation_usd: 2.5\n  tenants:\n    acme: { usd_per_day: 20 }\n"),
    );
    expect(loadConfig({}, loaded.overrides).budgets).toEqual({
      turn_reservation_usd: 2.5,
      tenants: { acme: { usd_per_day: 20 } },
    });
    expect(() => readConfigFile(file("budgets:\n  turn_reservation_usd: -1\n"))).toThrowError(
      /turn_reservation_usd/,
    );
  });

  it("reads step_network_allow: per tenant, the internal destinations its steps may reach; an entry that does not read is refused, naming it", () => {
    const loaded = readConfigFile(
      file("step_network_allow:\n  acme:\n    - 10.20.0.0/16\n    - db.internal:5432\n  globex: []\n"),
    );
    expect(loadConfig({}, loaded.overrides).stepNetworkAllow).toEqual({
      acme: ["10.20.0.0/16", "db.internal:5432"],
      globex: [],
    });
    expect(loadConfig({}).stepNetworkAllow).toEqual({});
    const wrong = readConfigFile(file("step_network_allow:\n  acme: [10.20.0.0/33]\n"));
    expect(() => loadConfig({}, wrong.overrides)).toThrowError(/10\.20\.0\.0\/33.*prefix is at most \/32/);
  });

  describe("the agent runner's config.yaml", () => {
    // Seed 003's three example files, as the seed shows them.
    const configYaml = `# 基本設定
execution_mode: local-process
default_timeout_seconds: 1800
log_level: INFO

# 外部サービス
task_registry_url: http://localhost:8001
repo_pool_url: http://localhost:8002
artifact_store_url: http://localhost:8003

# LLM設定
llm:
  model: gpt-4
  timeout_seconds: 120

# リトライ設定
git_retry_count: 3
network_retry_count: 3
llm_retry_count: 3

# リソース制限
max_memory_mb: 2048
max_cpu_percent: 80
`;
    const dockerYaml = `execution_mode: docker
docker_image: agents-ns/agent-runner:latest
docker_volumes:
  /var/agents-ns/workspaces: /workspaces

# 外部サービス（Dockerネットワーク内）
task_registry_url: http://task-registry:8001
repo_pool_url: http://repo-pool:8002
artifact_store_url: http://artifact-store:8003

llm:
  model: gpt-4
  timeout_seconds: 120
`;
    const k8sYaml = `execution_mode: kubernetes
k8s_namespace: agents-ns
k8s_image: agents-ns/agent-runner:latest
k8s_secrets:
  - git-token
  - openai-api-key

# 外部サービス（Kubernetes内）
task_registry_url: http://task-registry.agents-ns.svc.cluster.local:8001
repo_pool_url: http://repo-pool.agents-ns.svc.cluster.local:8002
artifact_store_url: http://artifact-store.agents-ns.svc.cluster.local:8003

llm:
  model: gpt-4
  timeout_seconds: 120

# リソース制限
max_memory_mb: 4096
max_cpu_percent: 200
`;

    it("config.yaml: every key lands in Config or in a one-line notice of what runyard does instead", () => {
      const config = loadConfig({}, readConfigFile(file(configYaml)).overrides);
      expect(config).toMatchObject({
        logLevel: "info",
        maxTurnSecs: 1800,
        gitRetryCount: 3,
        networkRetryCount: 3,
        llmRetryCount: 3,
        llmModel: "gpt-4",
        taskRegistryUrl: "http://localhost:8001",
        repoPoolUrl: "http://localhost:8002",
        artifactStoreUrl: "http://localhost:8003",
      });
      const notices = runnerNotices(config, {});
      expect(notices).toEqual([
        expect.stringMatching(/^llm\.timeout_seconds is ignored: .*stall limit/),
        expect.stringMatching(/^max_memory_mb is not enforced yet/),
        expect.stringMatching(/^max_cpu_percent is not enforced yet/),
        expect.stringMatching(
          /^task_registry_url, repo_pool_url, artifact_store_url ignored: the runyard server/,
        ),
      ]);
      for (const notice of notices) expect(notice).not.toContain("\n");
    });

    it("config.docker.yaml runs every agent in a sandbox of docker_image; config.k8s.yaml runs each turn as a Job", () => {
      const docker = loadConfig({}, readConfigFile(file(dockerYaml)).overrides);
      expect(docker).toMatchObject({
        agentSandbox: "agents-ns/agent-runner:latest",
        llmModel: "gpt-4",
        taskRegistryUrl: "http://task-registry:8001",
      });
      expect(runnerNotices(docker, {})).toContain(
        "docker_volumes is ignored: a sandboxed agent's container gets its task's worktree mounted at the same path, and nothing else of the runner",
      );
      expect(() => readConfigFile(file(dockerYaml.replace(/docker_image: .*\n/, "")))).toThrowError(
        expect.objectContaining({
          message: expect.stringMatching(
            /execution_mode docker needs docker_image: the image agents run in$/,
          ),
          hint: expect.stringContaining("docker_image: NAME:TAG"),
        }),
      );
      const kubernetes = loadConfig({}, readConfigFile(file(k8sYaml)).overrides);
      expect(kubernetes).toMatchObject({
        agentKubernetes: true,
        k8sNamespace: "agents-ns",
        k8sImage: "agents-ns/agent-runner:latest",
        k8sSecrets: ["git-token", "openai-api-key"],
        k8sPullTimeoutMs: 120_000,
        k8sScheduleTimeoutMs: 300_000,
        agentMaxMemoryMb: 4096,
        agentMaxCpuPercent: 200,
      });
      // Its limits are the pods' own: no notice says they are not enforced.
      expect(runnerNotices(kubernetes, {}).join("\n")).not.toContain("not enforced");
      const timeouts = loadConfig(
        {},
        readConfigFile(file(`${k8sYaml}k8s_pull_timeout: 90s\nk8s_schedule_timeout: 2m\nk8s_context: prod\n`))
          .overrides,
      );
      expect(timeouts).toMatchObject({
        k8sPullTimeoutMs: 90_000,
        k8sScheduleTimeoutMs: 120_000,
        k8sContext: "prod",
      });
      expect(() => readConfigFile(file(k8sYaml.replace(/k8s_image: .*\n/, "")))).toThrowError(
        expect.objectContaining({
          message: expect.stringMatching(
            /execution_mode kubernetes needs k8s_image: the image each agent turn's pod runs$/,
          ),
          hint: expect.stringContaining("k8s_image: REGISTRY/NAME:TAG"),
        }),
      );
      // As local-process, the docker file's image is said to be unused.
      const local = loadConfig(
        {},
        readConfigFile(file(dockerYaml.replace("execution_mode: docker", "execution_mode: local-process")))
          .overrides,
      );
      expect(local.agentSandbox).toBeUndefined();
      expect(runnerNotices(local, {})).toContain(
        "docker_image unused: agents run as local processes (execution_mode local-process)",
      );
      const k8s = loadConfig(
        {},
        readConfigFile(file(k8sYaml.replace("execution_mode: kubernetes", ""))).overrides,
      );
      expect(k8s.artifactStoreUrl).toBe("http://artifact-store.agents-ns.svc.cluster.local:8003");
      expect(runnerNotices(k8s, {})).toContain(
        "k8s_namespace, k8s_image, k8s_secrets unused: agents run as local processes (execution_mode local-process)",
      );
    });

    it("maps the RunnerConfig and LLMConfig fields the examples leave out", () => {
      const config = loadConfig(
        {},
        readConfigFile(
          file(
            "llm:\n  endpoint: http://127.0.0.1:11434/v1\n  model: llama3\nllm_retry_count: 5\ngit_retry_count: 6\ngit_token_env_var: MY_GIT_TOKEN\nllm_api_key_env_var: MY_LLM_KEY\nmask_secrets: true\nstructured_logging: true\nlog_level: WARNING\n",
          ),
        ).overrides,
      );
      expect(config).toMatchObject({
        llmEndpoint: "http://127.0.0.1:11434/v1",
        llmModel: "llama3",
        llmRetryCount: 5,
        gitRetryCount: 6,
        gitTokenEnvVar: "MY_GIT_TOKEN",
        llmApiKeyEnvVar: "MY_LLM_KEY",
        logLevel: "warn",
      });
      expect(runnerNotices(config, { MY_GIT_TOKEN: "t", MY_LLM_KEY: "k" })).toEqual([]);
      expect(runnerNotices(config, {})).toEqual([
        "git_token_env_var names MY_GIT_TOKEN, which is not set: tasks that give no git token get none",
        "llm_api_key_env_var names MY_LLM_KEY, which is not set: agents get no OPENAI_API_KEY from it",
      ]);
      const quiet = readConfigFile(file("structured_logging: false\nnetwork_retry_count: 5\n"));
      const loaded = loadConfig({}, quiet.overrides);
      expect(runnerNotices(loaded, {})).toEqual([
        "structured_logging: false is ignored: runyard always logs JSON lines",
      ]);
      expect(loaded.networkRetryCount).toBe(5);
    });

    it("reads the agent runner's environment variables", () => {
      const config = loadConfig({
        RUNNER_LOG_LEVEL: "DEBUG",
        RUNNER_TIMEOUT: "3600",
        TASK_REGISTRY_URL: "http://localhost:8001",
        REPO_POOL_URL: "http://localhost:8002",
        ARTIFACT_STORE_URL: "http://localhost:8003",
      });
      expect(config).toMatchObject({ logLevel: "debug", maxTurnSecs: 3600 });
      expect(runnerNotices(config, {})).toEqual([
        expect.stringMatching(/^task_registry_url, repo_pool_url, artifact_store_url ignored/),
      ]);
      expect(loadConfig({}).maxTurnSecs).toBeUndefined();
      expect(() => loadConfig({ RUNNER_LOG_LEVEL: "LOUD" })).toThrowError(/RUNNER_LOG_LEVEL/);
    });

    it("refuses an API key in the file and unmasked secrets, each with the way out", () => {
      expect(() => readConfigFile(file("llm:\n  api_key: sk-in-a-file\n  model: gpt-4\n"))).toThrowError(
        expect.objectContaining({
          message: expect.stringContaining("llm.api_key: API keys do not belong in a config file"),
          hint: expect.stringMatching(/OPENAI_API_KEY.*runyard secret set/),
        }),
      );
      expect(() => readConfigFile(file("mask_secrets: false\n"))).toThrowError(
        expect.objectContaining({
          message: expect.stringContaining("mask_secrets: false: masking cannot be turned off"),
          hint: expect.stringContaining("always masks"),
        }),
      );
      expect(() => readConfigFile(file("llm:\n  api_key: sk-x\n"))).not.toThrowError(/sk-x/);
    });
  });

  it("names unknown keys and the fix", () => {
    expect(() => readConfigFile(file("gruop: x\n"))).toThrowError(/gruop/);
  });

  it("says which file it cannot read", () => {
    expect(() => readConfigFile("/nonexistent/runyard.yaml")).toThrowError(/\/nonexistent\/runyard.yaml/);
  });

  describe("a bad value names where it came from", () => {
    const problems = (env: Record<string, string>, flags: object, path: string): string => {
      try {
        loadConfigWithFile(env, flags, path);
      } catch (error) {
        return (error as Error).message;
      }
      throw new Error("the config loaded");
    };

    it("a key of the file is named by the file and the key as written, not by a flag", () => {
      const path = file("capacity: -1\ngit_retry_count: 50\n");
      expect(problems({}, {}, path)).toBe(
        `invalid configuration:\n  config file ${path}, key git_retry_count: Too big: expected number to be <=20\n  config file ${path}, key capacity: Too small: expected number to be >0`,
      );
    });

    it("a key the file writes under another name is named as the file writes it", () => {
      const path = file("execution_mode: kubernetes\nk8s_image: agent:1\nk8s_pull_timeout: never\n");
      expect(problems({}, {}, path)).toBe(
        `invalid configuration:\n  config file ${path}, key k8s_pull_timeout: expected a duration such as 2m or 90s`,
      );
    });

    it("every setting the file sets, nested ones too, is named by a key the file holds", () => {
      const text = `server_url: [http://a:8088, http://b:8088]
capacity: 3
memory: 4096
audit:
  retention_days: 30
quotas:
  default_max_concurrent_runs: 4
  default_max_queued_runs: 20
  max_bots_per_user: 2
  users:
    ana: { max_queued_runs: 3 }
execution_mode: docker
docker_image: agent:1
default_timeout_seconds: 1800
llm:
  model: gpt-4
  endpoint: http://127.0.0.1:9/v1
max_memory_mb: 2048
k8s_pull_timeout: 2m
`;
      const loaded = readConfigFile(file(text));
      expect(loaded.sources).toMatchObject({
        serverUrl: "server_url",
        capacity: "capacity",
        auditRetentionDays: "audit.retention_days",
        defaultMaxQueuedRuns: "quotas.default_max_queued_runs",
        maxBotsPerUser: "quotas.max_bots_per_user",
        quotas: "quotas",
        agentSandbox: "docker_image",
        agentKubernetes: "execution_mode",
        maxTurnSecs: "default_timeout_seconds",
        llmModel: "llm.model",
        llmEndpoint: "llm.endpoint",
        agentMaxMemoryMb: "max_memory_mb",
        k8sPullTimeoutMs: "k8s_pull_timeout",
      });
      const written = parse(text) as Record<string, unknown>;
      const at = (key: string): unknown =>
        key.split(".").reduce<unknown>((value, part) => (value as Record<string, unknown>)?.[part], written);
      for (const [setting, value] of Object.entries(loaded.overrides)) {
        if (value === undefined || setting === "configFileNotices") continue;
        const key = loaded.sources[setting as keyof typeof loaded.sources];
        expect(key, setting).toBeDefined();
        expect(at(key ?? ""), setting).toBeDefined();
      }
    });

    it("a flag given over a file value is named as the flag; a variable under the file is not named", () => {
      const path = file("capacity: 3\nreplica_sweep_ms: 50\n");
      expect(problems({ RUNYARD_REPLICA_SWEEP_MS: "x" }, { capacity: "0" }, path)).toBe(
        `invalid configuration:\n  --capacity: Too small: expected number to be >0\n  config file ${path}, key replica_sweep_ms: must be at least 100 (ms): each sweep reads the database; the default is 2000`,
      );
      expect(loadConfigWithFile({}, { capacity: "4" }, file("capacity: -1\n")).capacity).toBe(4);
      expect(problems({ RUNYARD_CAPACITY: "-1" }, {}, file("group: a\n"))).toBe(
        "invalid configuration:\n  RUNYARD_CAPACITY: Too small: expected number to be >0",
      );
    });
  });
});
