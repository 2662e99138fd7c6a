import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { type ModelServer, type RecordedRequest, startModelServer } from "../model-server/server.js";
import { type GitHttpServer, startGitHttpServer } from "../workspace/git-http-server.js";
import { tempDir } from "./cli.js";
import { git } from "./git-repos.js";
import { api, type Proc, runnerToken, startRunner, startTestServer, type TestServer } from "./server.js";

/** A model request of the agent's own loop (it offers tools), not the run's title request. */
export const hasTools = (r: RecordedRequest) =>
  r.path === "/v1/chat/completions" && ((r.body as { tools?: unknown[] })?.tools?.length ?? 0) > 0;

/** A server, a scripted model and one runner outside tenants serving two tenants' agent tasks. */
export interface SharedAgentRunner {
  root: string;
  /** The remote repository both tenants' tasks work on: `main` holds one README. */
  bare: string;
  /**
   * Its URL as the tasks name it: served over HTTP, as a member may name no folder of the runner
   * as a repo.
   */
  remoteUrl: string;
  workspaceDir: string;
  server: TestServer;
  model: ModelServer;
  runner: Proc;
  /** A member's token of tenant acme, and one of tenant globex. */
  attacker: string;
  victim: string;
  stop(): Promise<void>;
}

/**
 * Starts it as a runner that serves several tenants has it: the sandbox on, shared, the built-in
 * `openai` agent pointed at the scripted model by the runner's env.
 */
export async function startSharedAgentRunner(options: {
  name: string;
  runnerId: string;
  readme: string;
  apiKey: string;
  /** More arguments of `runyard server`, such as `--config FILE`. */
  serverArgs?: string[];
}): Promise<SharedAgentRunner> {
  const root = tempDir(`runyard-${options.name}-`);
  const bare = join(root, "remote.git");
  const seed = join(root, "seed");
  execFileSync("git", ["init", "-q", "--bare", "-b", "main", bare]);
  execFileSync("git", ["init", "-q", "-b", "main", seed]);
  execFileSync("sh", ["-c", `printf '%s' "$1" > README.md`, "sh", options.readme], { cwd: seed });
  git(seed, "add", "README.md");
  git(seed, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start");
  git(seed, "push", "-q", bare, "main");
  const gitServer: GitHttpServer = await startGitHttpServer({
    projectRoot: root,
    username: "x-access-token",
    password: "unused",
    anonymous: true,
  });
  const model = await startModelServer({ conversations: [] });
  const server = await startTestServer(undefined, {}, undefined, options.serverArgs ?? []);
  const member = async (tenant: string) =>
    (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: `${tenant} member`,
        tenant_id: tenant,
      })
    ).body.token;
  const attacker = await member("acme");
  const victim = await member("globex");
  const workspaceDir = join(root, "workspaces");
  const runner = await startRunner(server.url, await runnerToken(server.url), {
    id: options.runnerId,
    env: {
      RUNYARD_SHARED: "1",
      RUNYARD_WORKSPACE_DIR: workspaceDir,
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: options.apiKey,
    },
  });
  return {
    root,
    bare,
    remoteUrl: gitServer.url("remote.git"),
    workspaceDir,
    server,
    model,
    runner,
    attacker,
    victim,
    async stop() {
      await runner.kill();
      await server.proc.kill();
      await model.stop();
      await gitServer.close();
    },
  };
}
