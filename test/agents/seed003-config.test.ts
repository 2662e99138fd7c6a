/**
 * Seed 003's config.yaml on a real runner (`runyard runner --config FILE`): the settings it maps
 * reach the built-in `openai` loop's task (model, endpoint, key from the named env variable, the
 * turn cut to default_timeout_seconds), and the ones runyard does otherwise are said at start.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { runCli, tempDir } from "../helpers/cli.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startCli,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { type ModelServer, startModelServer, turns } from "../model-server/server.js";

const key = "sk-seed003-runner-key";
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let events: RunEvent[];
let result: { model?: string; final_text?: string; status: string };

describe("the agent runner's config.yaml on a runner", () => {
  beforeAll(async () => {
    const root = tempDir("runyard-seed003-");
    model = await startModelServer(
      turns({ text: `Done; my key was ${key}.`, usage: { input_tokens: 10, output_tokens: 5 } }),
    );
    const config = join(root, "config.yaml");
    writeFileSync(
      config,
      [
        "execution_mode: local-process",
        "default_timeout_seconds: 1800",
        "log_level: INFO",
        "task_registry_url: http://localhost:8001",
        "repo_pool_url: http://localhost:8002",
        "artifact_store_url: http://localhost:8003",
        "llm:",
        "  model: gpt-4",
        `  endpoint: ${model.url}/v1`,
        "  timeout_seconds: 120",
        "git_retry_count: 3",
        "network_retry_count: 3",
        "llm_retry_count: 0",
        "llm_api_key_env_var: SEED003_LLM_KEY",
        "max_memory_mb: 2048",
        "max_cpu_percent: 80",
        "",
      ].join("\n"),
    );
    server = await startTestServer();
    runner = startCli(
      [
        "runner",
        "--server",
        server.url,
        "--token",
        await runnerToken(server.url),
        "--id",
        "seed003",
        "--config",
        config,
      ],
      { SEED003_LLM_KEY: key, OPENAI_API_KEY: "", RUNYARD_WORKSPACE_DIR: join(root, "workspaces") },
    );
    await runner.waitFor("runner seed003 connected");
    const submitted = await api<{ run_id: string }>(server.url, "POST", "/api/runs", {
      kind: "agent",
      agent: "openai",
      prompt: "Say what you did.",
      timeout_secs: 3600,
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    await waitForRun(server.url, submitted.body.run_id, isFinal);
    events = await readEvents(server.url, submitted.body.run_id);
    const finished = events.at(-1) as RunEvent & { agents?: Array<typeof result> };
    result = finished.agents?.[0] ?? { status: "missing" };
  });

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
    await model?.stop();
  });

  it("says once at start what it accepts but does otherwise", () => {
    const output = runner.output();
    for (const notice of [
      "llm.timeout_seconds is ignored",
      "max_memory_mb is not enforced yet",
      "max_cpu_percent is not enforced yet",
      "task_registry_url, repo_pool_url, artifact_store_url ignored",
    ]) {
      expect(output.split(notice)).toHaveLength(2);
    }
  });

  it("runs the built-in loop with llm.model at llm.endpoint, with the key from llm_api_key_env_var", () => {
    expect(result).toMatchObject({ status: "success", model: "gpt-4" });
    expect(model.requests).toHaveLength(1);
    const request = model.requests[0]!;
    expect(request.path).toBe("/v1/chat/completions");
    expect(request.headers.authorization).toBe(`Bearer ${key}`);
    expect((request.body as { model: string }).model).toBe("gpt-4");
  });

  it("cuts the task's hour to default_timeout_seconds with a notice, and masks the key it filled in", () => {
    expect(events).toContainEqual(
      expect.objectContaining({
        type: "notice",
        level: "warn",
        message:
          "this runner cuts agent turns at 1800 s (default_timeout_seconds); the task asked for 3600 s",
      }),
    );
    const message = events.find((e) => e.type === "agent.message") as { text: string } | undefined;
    expect(message?.text).toMatch(/^Done; my key was .+\.$/);
    expect(JSON.stringify(events)).not.toContain(key);
  });

  it("takes the agent runner's config.docker.yaml (agents in containers of docker_image), and refuses it without an image", async () => {
    const dir = tempDir("runyard-seed003-docker-");
    const file = join(dir, "config.docker.yaml");
    writeFileSync(
      file,
      "execution_mode: docker\ndocker_image: necrocode/agent-runner:latest\ndocker_volumes:\n  /var/necrocode/workspaces: /workspaces\n",
    );
    // Read and taken: the runner goes on to its server, which refuses the made-up token.
    const taken = await runCli(["runner", "--server", server.url, "--token", "x", "--config", file]);
    expect(taken.code).not.toBe(0);
    expect(taken.stderr).toContain(
      "docker_volumes is ignored: a sandboxed agent's container gets its task's worktree",
    );
    expect(taken.stderr).toContain("the server refused the runner token");
    const bare = join(dir, "config.no-image.yaml");
    writeFileSync(bare, "execution_mode: docker\n");
    const refused = await runCli(["runner", "--server", server.url, "--token", "x", "--config", bare]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain("execution_mode docker needs docker_image: the image agents run in");
    expect(refused.stderr).toContain("docker_image: NAME:TAG");
  });
});
