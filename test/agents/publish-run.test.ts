/**
 * "Push" and "open pull request" asked of an agent run submitted without push: a shared,
 * sandboxed runner, the built-in `openai` agent against the scripted model server, the repo on
 * the scripted GitHub (its REST API and git over smart HTTP, a bare repo behind it). The branch
 * reaches the bare remote only when asked, once however often asked; the pull request is opened
 * through the forge the tenant added, and refused with how to add one before it has. Another
 * tenant's member gets 404 and a teammate who did not submit the run 403 for each.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ScriptedForge, startScriptedForge } from "../forge-server/server.js";
import { runCli, tempDir } from "../helpers/cli.js";
import { addGithubForge } from "../helpers/forge-setup.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "../helpers/server.js";
import { hasTools } from "../helpers/shared-agent-runner.js";
import { type ModelServer, startModelServer } from "../model-server/server.js";

interface Published {
  run_id: string;
  parent_run_id: string;
  status: string;
  created: boolean;
}
interface ErrorBody {
  error: { code: string; message: string; hint: string };
}

const password = "publish-test-password-1";
const memberForgeToken = "ghp_alice_push_token_5c1d";
const botToken = "ghp_runyard_bot_token_93be";
let forge: ScriptedForge;
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let bare = "";
let member = "";
let teammate = "";
let tenantAdmin = "";
let outsider = "";
let first = "";
let branch = "";

const gitOut = (...args: string[]) =>
  spawnSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" }).stdout.trim();

async function login(username: string, role: "admin" | "member", tenant: string): Promise<string> {
  const made = await api(server.url, "POST", "/api/users", { username, role, password, tenant_id: tenant });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const session = await api<{ token: string }>(
    server.url,
    "POST",
    "/api/auth/login",
    { username, password },
    "",
  );
  expect(session.status, JSON.stringify(session.body)).toBe(200);
  return session.body.token;
}

async function userToken(name: string): Promise<string> {
  return (await api<{ token: string }>(server.url, "POST", "/api/tokens", { kind: "user", name })).body.token;
}

/** A task on the forge's repo, without push, whose agent adds hello.py; answers its run once it succeeded. */
async function submitHello(token: string): Promise<string> {
  const submitted = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    {
      kind: "agent",
      agent: "openai",
      prompt: "add hello.py",
      repo: { url: forge.gitUrl("acme/app"), push: false },
      env: { GIT_TOKEN: memberForgeToken },
    },
    token,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const done = await waitForRun(server.url, submitted.body.run_id, isFinal, 180_000);
  expect(done.status, JSON.stringify(done.error)).toBe("success");
  return submitted.body.run_id;
}

beforeAll(async () => {
  const root = tempDir("runyard-publish-");
  forge = await startScriptedForge(root);
  bare = forge.createRepo("acme/app", { "README.md": "app\n" });
  forge.addToken(botToken, "runyard-bot");
  forge.setPermission("runyard-bot", "write");
  forge.addToken(memberForgeToken, "alice");
  forge.setPermission("alice", "write");
  model = await startModelServer({
    conversations: [
      {
        match: hasTools,
        turns: [
          { toolCalls: [{ name: "write_file", input: { path: "hello.py", content: 'print("hello")\n' } }] },
          { text: "Added hello.py." },
        ],
      },
      { turns: [{ text: "Add hello" }] },
    ],
  });
  server = await startTestServer();
  member = await login("alice", "member", "acme");
  teammate = await login("bob", "member", "acme");
  tenantAdmin = await login("ada", "admin", "acme");
  outsider = await login("mallory", "member", "globex");
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "publish-runner",
    env: {
      RUNYARD_SHARED: "1",
      RUNYARD_WORKSPACE_DIR: join(root, "ws"),
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: "sk-publish-test",
    },
  });
  first = await submitHello(member);
  branch = `runyard/${first}-openai`;
}, 300_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  await forge?.close();
});

describe("publishing an agent run's branch after it ended", () => {
  it("a run without push left the remote without its branch, and its diff says who may publish it", async () => {
    expect(gitOut("branch", "--list", branch)).toBe("");
    type Diff = { repo: { url: string; pushed_by_task: boolean } | null; may_publish: boolean };
    const mine = await api<Diff>(server.url, "GET", `/api/runs/${first}/diff`, undefined, member);
    expect(mine.body.repo).toEqual({ url: forge.gitUrl("acme/app"), pushed_by_task: false });
    expect(mine.body.may_publish).toBe(true);
    const theirs = await api<Diff>(server.url, "GET", `/api/runs/${first}/diff`, undefined, teammate);
    expect(theirs.body.may_publish).toBe(false);
  });

  it("another tenant's member gets 404 for the push, the pull request and the diff", async () => {
    for (const path of ["push", "pull-request"]) {
      const refused = await api<ErrorBody>(
        server.url,
        "POST",
        `/api/runs/${first}/${path}`,
        undefined,
        outsider,
      );
      expect(refused.status, path).toBe(404);
      expect(refused.body.error.code).toBe("NOT_FOUND");
    }
    expect((await api(server.url, "GET", `/api/runs/${first}/diff`, undefined, outsider)).status).toBe(404);
  });

  it("a teammate who did not submit the run gets 403 for the push and the pull request", async () => {
    for (const path of ["push", "pull-request"]) {
      const refused = await api<ErrorBody>(
        server.url,
        "POST",
        `/api/runs/${first}/${path}`,
        undefined,
        teammate,
      );
      expect(refused.status, path).toBe(403);
      expect(refused.body.error.code).toBe("FORBIDDEN");
    }
    expect(gitOut("branch", "--list", branch)).toBe("");
  });

  it("a pull request is refused, saying how to add a forge, while no forge holds the repo", async () => {
    const refused = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${first}/pull-request`,
      undefined,
      member,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.code).toBe("INVALID_INPUT");
    expect(refused.body.error.message).toContain("no forge added here holds the repo");
    expect(refused.body.error.hint).toContain("runyard forge add");
    expect(forge.issues.filter((i) => i.pull)).toEqual([]);
  });

  it("a run that is not an agent run on a repo has nothing to push", async () => {
    const workflow = await api<{ run_id: string }>(
      server.url,
      "POST",
      "/api/runs",
      {
        workflow:
          "name: w\ninventory:\n  hosts:\n    h: {}\nsteps:\n  - name: s\n    targets: [h]\n    action: cmd.run\n    args: {cmd: 'true'}\n",
      },
      member,
    );
    expect(workflow.status, JSON.stringify(workflow.body)).toBe(201);
    const refused = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${workflow.body.run_id}/push`,
      undefined,
      member,
    );
    expect(refused.status).toBe(400);
    expect(refused.body.error.message).toContain("has no branch");
    await api(server.url, "POST", `/api/runs/${workflow.body.run_id}/cancel`, undefined, member);
  });

  it("push, asked twice at once, is one run that pushes the branch as the run committed it", async () => {
    const [a, b] = await Promise.all(
      [0, 1].map(() => api<Published>(server.url, "POST", `/api/runs/${first}/push`, undefined, member)),
    );
    expect([a?.status, b?.status].sort()).toEqual([200, 201]);
    expect(a?.body.run_id).toBe(b?.body.run_id);
    expect([a?.body.created, b?.body.created].sort()).toEqual([false, true]);
    const pushRun = a?.body.run_id ?? "";
    const done = await waitForRun(server.url, pushRun, isFinal, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe("success");
    expect(gitOut("show", `${branch}:hello.py`)).toBe('print("hello")');
    const parentEnd = (await readEvents(server.url, first)).find((e) => e.type === "run.finished");
    const commit = parentEnd?.type === "run.finished" ? parentEnd.agents?.[0]?.commit : undefined;
    expect(commit).toMatch(/^[0-9a-f]{40}$/);
    expect(gitOut("rev-parse", branch)).toBe(commit);
    // The push ran no agent turn, no tests and no commit: only the push step.
    const steps = (await readEvents(server.url, pushRun)).flatMap((e) =>
      e.type === "step.finished" ? [[e.step, e.status]] : [],
    );
    expect(steps).toEqual([
      ["prepare", "success"],
      ["agent", "skipped"],
      ["test", "skipped"],
      ["commit", "skipped"],
      ["push", "success"],
    ]);
    // By the CLI, as the submitter: the same run.
    const cli = await runCli(["agent", "push", first, "--json", "--server", server.url], {
      env: { RUNYARD_TOKEN: member },
    });
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(cli.stdout)).toEqual({ run_id: pushRun });
    // Asked again once it has pushed: the same run.
    const again = await api<Published>(server.url, "POST", `/api/runs/${first}/push`, undefined, tenantAdmin);
    expect(again.status, JSON.stringify(again.body)).toBe(200);
    expect(again.body).toMatchObject({ run_id: pushRun, created: false, status: "success" });
  }, 240_000);

  it("open pull request, asked twice, opens one pull request through the forge of the run's own tenant", async () => {
    // A forge on a server of one's own is a platform admin's to add, outside every tenant: the
    // runs outside tenants use it, tenant acme's do not.
    await addGithubForge({
      serverUrl: server.url,
      forgeUrl: forge.url,
      repo: "acme/app",
      botToken,
      agent: "openai",
      test: "true",
    });
    const acme = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${first}/pull-request`,
      undefined,
      member,
    );
    expect(acme.status).toBe(400);
    expect(acme.body.error.message).toContain("no forge added here holds the repo");

    const ops = await userToken("ops submitter");
    const opsOther = await userToken("ops other");
    const second = await submitHello(ops);
    const secondBranch = `runyard/${second}-openai`;
    const teammateAsk = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${second}/pull-request`,
      undefined,
      opsOther,
    );
    expect(teammateAsk.status).toBe(403);
    const tenantAsk = await api<ErrorBody>(
      server.url,
      "POST",
      `/api/runs/${second}/pull-request`,
      undefined,
      member,
    );
    expect(tenantAsk.status).toBe(404);

    const asked = await api<Published>(
      server.url,
      "POST",
      `/api/runs/${second}/pull-request`,
      undefined,
      ops,
    );
    expect(asked.status, JSON.stringify(asked.body)).toBe(201);
    const again = await api<Published>(
      server.url,
      "POST",
      `/api/runs/${second}/pull-request`,
      undefined,
      ops,
    );
    expect(again.status).toBe(200);
    expect(again.body.run_id).toBe(asked.body.run_id);
    const done = await waitForRun(server.url, asked.body.run_id, isFinal, 180_000);
    expect(done.status, JSON.stringify(done.error)).toBe("success");
    expect(gitOut("show", `${secondBranch}:hello.py`)).toBe('print("hello")');
    const pulls = forge.issues.filter((i) => i.pull);
    expect(pulls).toHaveLength(1);
    expect(pulls[0]?.pull).toMatchObject({ head: secondBranch, base: "main" });
    expect(pulls[0]?.user).toBe("runyard-bot");
    expect(done.vars.pull_request_url).toBe(pulls[0]?.pull?.url);
    expect(done.vars.pull_request_number).toBe(String(pulls[0]?.number));
  }, 400_000);
});
