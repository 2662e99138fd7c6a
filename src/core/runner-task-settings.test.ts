import { describe, expect, it } from "vitest";
import { loadConfig } from "./config.js";
import { type AgentTask, AgentTask as AgentTaskSchema } from "./jobs/agent.js";
import { applyRunnerSettings } from "./runner-task-settings.js";

function task(more: Partial<AgentTask> = {}): AgentTask {
  return AgentTaskSchema.parse({
    run_id: "run_1",
    agent: "openai",
    prompt: "p",
    title: "t",
    key: "run_1-openai",
    timeout_ms: 3_600_000,
    stall_ms: 120_000,
    ...more,
  });
}

const seed003 = loadConfig(
  {},
  {
    maxTurnSecs: 1800,
    llmRetryCount: 5,
    llmModel: "gpt-4",
    llmEndpoint: "http://127.0.0.1:11434/v1",
    gitTokenEnvVar: "MY_GIT_TOKEN",
    llmApiKeyEnvVar: "MY_LLM_KEY",
  },
);
const runnerEnv = { MY_GIT_TOKEN: "ghp_runner", MY_LLM_KEY: "sk-runner", OPENAI_API_KEY: "sk-plain" };

describe("a runner's agent runner config.yaml settings on an agent task", () => {
  it("cuts a longer turn to default_timeout_seconds and says so; a shorter one is left alone", () => {
    const cut = applyRunnerSettings(task(), seed003, runnerEnv);
    expect(cut.task.timeout_ms).toBe(1_800_000);
    expect(cut.notices).toEqual([
      "this runner cuts agent turns at 1800 s (default_timeout_seconds); the task asked for 3600 s",
    ]);
    const short = applyRunnerSettings(task({ timeout_ms: 300_000 }), seed003, runnerEnv);
    expect(short.task.timeout_ms).toBe(300_000);
    expect(short.notices).toEqual([]);
    expect(applyRunnerSettings(task(), loadConfig({}), {}).task.timeout_ms).toBe(3_600_000);
  });

  it("gives the built-in loop the model, endpoint, retries and key the task leaves unset", () => {
    const { task: applied } = applyRunnerSettings(task(), seed003, runnerEnv);
    expect(applied.model).toBe("gpt-4");
    expect(applied.env).toEqual({
      OPENAI_API_KEY: "sk-runner",
      OPENAI_BASE_URL: "http://127.0.0.1:11434/v1",
      RUNYARD_LLM_RETRY_COUNT: "5",
    });
    expect(applied.git_token).toBe("ghp_runner");
  });

  it("lets the task's own values win, and a follow-up keep its session's model", () => {
    const own = task({
      model: "gpt-4o",
      env: { OPENAI_API_KEY: "sk-task", OPENAI_BASE_URL: "http://model:8080/v1" },
      git_token: "ghp_task",
    });
    const { task: applied } = applyRunnerSettings(own, seed003, runnerEnv);
    expect(applied).toMatchObject({
      model: "gpt-4o",
      git_token: "ghp_task",
      env: { OPENAI_API_KEY: "sk-task", OPENAI_BASE_URL: "http://model:8080/v1" },
    });
    expect(own.env).toEqual({ OPENAI_API_KEY: "sk-task", OPENAI_BASE_URL: "http://model:8080/v1" });
    expect(applyRunnerSettings(task({ session_id: "s" }), seed003, runnerEnv).task.model).toBeUndefined();
  });

  it("does not send a task's own key to the runner's endpoint", () => {
    const { task: applied } = applyRunnerSettings(
      task({ env: { OPENAI_API_KEY: "sk-task" } }),
      seed003,
      runnerEnv,
    );
    expect(applied.env).toEqual({ OPENAI_API_KEY: "sk-task", RUNYARD_LLM_RETRY_COUNT: "5" });
  });

  it("gives a CLI agent the key under its other name with the runner's OPENAI_BASE_URL, and its retry count", () => {
    const env = { ...runnerEnv, OPENAI_BASE_URL: "http://proxy:4000/v1" };
    const { task: applied } = applyRunnerSettings(task({ agent: "codex" }), seed003, env);
    expect(applied.model).toBeUndefined();
    expect(applied.env).toEqual({
      OPENAI_API_KEY: "sk-runner",
      OPENAI_BASE_URL: "http://proxy:4000/v1",
      RUNYARD_LLM_RETRY_COUNT: "5",
    });
    // Without llm_api_key_env_var a CLI agent inherits the runner's env; only its retries are set.
    expect(applyRunnerSettings(task({ agent: "codex" }), loadConfig({}), env).task.env).toEqual({
      RUNYARD_LLM_RETRY_COUNT: "3",
    });
  });

  it("without llm settings gives the built-in loop the runner's OPENAI_API_KEY and OPENAI_BASE_URL", () => {
    const env = { OPENAI_API_KEY: "sk-plain", OPENAI_BASE_URL: "http://127.0.0.1:8000/v1" };
    const { task: applied } = applyRunnerSettings(task(), loadConfig({}), env);
    expect(applied.env).toEqual({ ...env, RUNYARD_LLM_RETRY_COUNT: "3" });
    expect(applied.model).toBeUndefined();
    expect(applied.git_token).toBeUndefined();
    expect(applyRunnerSettings(task(), loadConfig({}), { OPENAI_API_KEY: "" }).task.env).toEqual({
      RUNYARD_LLM_RETRY_COUNT: "3",
    });
  });

  it("never hands a task runyard's own credentials, whatever the settings name", () => {
    const config = loadConfig(
      {},
      { gitTokenEnvVar: "RUNYARD_TOKEN", llmApiKeyEnvVar: "RUNYARD_ADMIN_TOKEN" },
    );
    const { task: applied } = applyRunnerSettings(task(), config, {
      RUNYARD_TOKEN: "runner-token",
      RUNYARD_ADMIN_TOKEN: "admin-token",
    });
    expect(applied.git_token).toBeUndefined();
    expect(applied.env.OPENAI_API_KEY).toBeUndefined();
  });
});

describe("a runner's agent_repos: on an agent task", () => {
  const config = loadConfig(
    {},
    {
      agentRepos: [
        {
          match: "github.com/acme/*",
          mcp_servers: { docs: { url: "http://10.0.0.5:8080/mcp" }, files: { command: "operator-files" } },
          setup: "npm ci",
          copy_files: [".env"],
        },
        { match: "github.com/other/*", setup: "never" },
      ],
    },
  );
  const repo = (url: string) => ({ url, branch: "b", push: false, key: "k", reuse: false });

  it("adds the matching entry's servers, setup and files; the task's own win, run after and come after", () => {
    const given = task({
      agent: "claude_code",
      repo: repo("git@github.com:acme/api.git"),
      mcp_servers: { files: { command: "mine", args: [], env: {} } },
      setup: "make dev",
      copy_files: ["local.json"],
      mcp_operator: ["files"],
    });
    const { task: out, notices } = applyRunnerSettings(given, config, {});
    expect(notices).toEqual([]);
    expect(out.mcp_servers).toEqual({
      files: { command: "mine", args: [], env: {} },
      docs: { url: "http://10.0.0.5:8080/mcp" },
    });
    // Only the runner says which servers are its operator's: the job's word is dropped.
    expect(out.mcp_operator).toEqual(["docs"]);
    expect(out.setup).toBe("{\nnpm ci\n} && {\nmake dev\n}");
    expect(out.copy_files).toEqual([".env", "local.json"]);
  });

  it("leaves a task on another repository, or without one, as it is; tells the built-in loop it gets no servers", () => {
    const other = applyRunnerSettings(
      task({ agent: "codex", repo: repo("https://github.com/evil/api") }),
      config,
      {},
    );
    expect(other.task.mcp_servers).toEqual({});
    expect(other.task.setup).toBeUndefined();
    const loop = applyRunnerSettings(task({ repo: repo("https://github.com/acme/api") }), config, {});
    expect(loop.task.mcp_servers).toEqual({});
    expect(loop.task.setup).toBe("npm ci");
    expect(loop.notices.join("\n")).toMatch(/openai takes none/);
  });
});
