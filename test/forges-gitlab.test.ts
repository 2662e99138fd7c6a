/**
 * GitLab issue tasks end to end: a real server and a sandboxed runner, the built-in agent loop
 * against the scripted model server, and the scripted GitLab (its REST v4 API, git over smart
 * HTTP, webhooks with their secret token). A labelled issue ends as a merge request with the
 * result table; a Developer's comment on a line of it is the next turn, a new commit; a
 * Reporter's comment, a wrong or missing token, a replayed delivery and another tenant's forge
 * start nothing.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type GitLabIssue,
  type GitLabMergeRequest,
  type ScriptedGitLab,
  startScriptedGitLab,
} from "./forge-server/gitlab.js";
import { runCli, tempDir } from "./helpers/cli.js";
import { type AddedForge, addForge, startedRun } from "./helpers/forge-setup.js";
import { until } from "./helpers/processes.js";
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
} from "./helpers/server.js";
import { type ModelServer, startModelServer, type Turn } from "./model-server/server.js";

const botToken = "glpat-runyard-bot-token-3c9f";
let gitlab: ScriptedGitLab;
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let added: AddedForge;
let bare = "";

const writeHello = (content: string): Turn[] => [
  { toolCalls: [{ name: "write_file", input: { path: "hello.py", content } }] },
  { text: "Wrote hello.py." },
];
const gitOut = (...args: string[]) =>
  spawnSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" }).stdout;
const runCount = async () =>
  (await api<{ runs: unknown[] }>(server.url, "GET", "/api/runs?limit=100")).body.runs.length;
const answer = (delivery: { body: string }) =>
  JSON.parse(delivery.body) as { outcome: string; run_id: string | null; note: string };

beforeAll(async () => {
  const root = tempDir("runyard-forges-gitlab-");
  gitlab = await startScriptedGitLab(root);
  bare = gitlab.createProject("acme/app", { "README.md": "app\n" });
  gitlab.addToken(botToken, "runyard-bot");
  gitlab.setAccess("runyard-bot", 30);
  gitlab.setAccess("alice", 30);
  gitlab.setAccess("carol", 20);
  gitlab.addUser("mallory");
  model = await startModelServer({ conversations: [{ turns: writeHello('print("hello")\n') }] });
  // No runner is lost here: a lease of 30 s, not the tests' 2 s, holds under a loaded machine.
  server = await startTestServer(undefined, {
    RUNYARD_LEASE_MS: "30000",
    RUNYARD_RECONNECT_GRACE_MS: "60000",
  });
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "gitlab-runner",
    env: {
      OPENAI_BASE_URL: `${model.url}/v1`,
      OPENAI_API_KEY: "sk-forge-test",
      RUNYARD_WORKSPACE_DIR: join(root, "ws"),
    },
  });
  // The instance's URL, as its operator knows it: runyard adds /api/v4.
  added = await addForge("gitlab", {
    serverUrl: server.url,
    forgeUrl: gitlab.url,
    repo: "acme/app",
    botToken,
    agent: "openai",
    test: "python3 hello.py | grep -qx hello",
  });
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  await gitlab?.close();
});

describe("tasks from a GitLab project's issues", () => {
  let issue: GitLabIssue;
  let request: GitLabMergeRequest | undefined;

  it("is added with its API under the instance's URL", async () => {
    const { body } = await api<{ forges: Array<{ id: string; kind: string; api_url: string }> }>(
      server.url,
      "GET",
      "/api/forges",
    );
    expect(body.forges.find((f) => f.id === added.id)).toMatchObject({
      kind: "gitlab",
      api_url: `${gitlab.url}/api/v4`,
    });
  });

  it("a labelled issue ends as a merge request with the result table, and a note on the issue", async () => {
    issue = gitlab.createIssue({ title: "Add hello.py", description: "It prints hello.", author: "alice" });
    const runId = startedRun(
      await gitlab.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "Issue Hook",
        gitlab.payloads.labeled("acme/app", issue, "runyard", "alice"),
      ),
    );
    const run = await waitForRun(server.url, runId, isFinal, 120_000);
    expect(run.status, JSON.stringify(await readEvents(server.url, runId))).toBe("success");
    await until(
      "GitLab hears of the run",
      () => gitlab.notes.some((n) => n.on === `issues/${issue.iid}`),
      20_000,
    );
    request = gitlab.mergeRequests.find((m) => m.source_branch === `runyard/issue-${issue.iid}`);
    expect(request?.target_branch).toBe("main");
    expect(request?.description).toContain(`Closes #${issue.iid}.`);
    expect(request?.description).toMatch(/\| agent \| openai/);
    expect(request?.description).toMatch(/\| tests \| success/);
    expect(request?.description).toMatch(/\| diff \| 1 files, \+1 -0/);
    expect(gitOut("show", `runyard/issue-${issue.iid}:hello.py`)).toBe('print("hello")\n');
    const note = gitlab.notes.find((n) => n.on === `issues/${issue.iid}`);
    expect(note?.body).toContain(`Opened !${request?.iid}`);
    expect(note?.author).toBe("runyard-bot");
    // The permission was asked of GitLab: the user by name, then the project's members.
    expect(gitlab.requests).toContain("GET /api/v4/users?username=alice");
    expect(
      gitlab.requests.some((r) => /^GET \/api\/v4\/projects\/acme%2Fapp\/members\/all\/\d+$/.test(r)),
    ).toBe(true);
  }, 150_000);

  it("a Developer's comment on a line of the merge request is the next turn: a new commit, answered there", async () => {
    if (!request) throw new Error("no merge request from the first test");
    model.setScript({
      conversations: [
        { turns: [...writeHello('print("hello")\n'), ...writeHello('print("hello")\nprint("bye")\n')] },
      ],
    });
    const before = Number(gitOut("rev-list", "--count", `runyard/issue-${issue.iid}`).trim());
    const iid = request.iid;
    const delivery = await gitlab.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "Note Hook",
      gitlab.payloads.mergeRequestNote("acme/app", request, "also print bye", "alice", true),
    );
    expect(answer(delivery).note).toBe(`follow-up on merge request !${iid}`);
    const followed = await waitForRun(server.url, startedRun(delivery), isFinal, 120_000);
    expect(followed.status, JSON.stringify(followed)).toBe("success");
    await until(
      "GitLab hears of the follow-up",
      () => gitlab.notes.some((n) => n.on === `merge_requests/${iid}`),
      20_000,
    );
    expect(Number(gitOut("rev-list", "--count", `runyard/issue-${issue.iid}`).trim())).toBe(before + 1);
    expect(gitOut("show", `runyard/issue-${issue.iid}:hello.py`)).toContain("bye");
    expect(gitlab.notes.find((n) => n.on === `merge_requests/${iid}`)?.body).toContain("Pushed a new commit");
    // runyard's own note on the merge request is no command: delivered back, it starts nothing.
    const own = gitlab.notes.find((n) => n.on === `merge_requests/${iid}`)?.body ?? "";
    const echoed = await gitlab.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "Note Hook",
      gitlab.payloads.mergeRequestNote("acme/app", request, own, "runyard-bot"),
    );
    expect(answer(echoed).outcome).toBe("ignored");
  }, 150_000);

  it("a Reporter's comment and a stranger's label start nothing: the permission is asked of GitLab", async () => {
    if (!request) throw new Error("no merge request from the first test");
    const runsBefore = await runCount();
    const reader = await gitlab.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "Note Hook",
      gitlab.payloads.mergeRequestNote("acme/app", request, "/runyard delete everything", "carol"),
    );
    expect(reader.status).toBe(202);
    expect(answer(reader)).toMatchObject({ outcome: "refused", run_id: null });
    expect(answer(reader).note).toContain("carol has read access");
    const another = gitlab.createIssue({ title: "Another", description: "x", author: "mallory" });
    const stranger = await gitlab.deliver(
      added.webhookUrl,
      added.webhookSecret,
      "Issue Hook",
      gitlab.payloads.labeled("acme/app", another, "runyard", "mallory"),
    );
    expect(answer(stranger)).toMatchObject({ outcome: "refused", run_id: null });
    expect(await runCount()).toBe(runsBefore);
  });

  it("a wrong or missing secret token is 401 and a replayed delivery is a duplicate: nothing starts", async () => {
    model.setScript({ conversations: [{ turns: [{ text: "Nothing to do." }] }] });
    const another = gitlab.createIssue({ title: "Replayed", description: "x", author: "alice" });
    const payload = gitlab.payloads.labeled("acme/app", another, "runyard", "alice");
    const runsBefore = await runCount();
    const wrong = await gitlab.deliver(
      added.webhookUrl,
      // The last character changed (a secret may end in "0" already).
      `${added.webhookSecret.slice(0, -1)}${added.webhookSecret.endsWith("0") ? "1" : "0"}`,
      "Issue Hook",
      payload,
    );
    expect(wrong.status).toBe(401);
    expect(JSON.parse(wrong.body).error.code).toBe("UNAUTHORIZED");
    const missing = await gitlab.deliver(added.webhookUrl, undefined, "Issue Hook", payload);
    expect(missing.status).toBe(401);
    // A GitHub signature of the right secret is no GitLab token.
    const asGithub = await fetch(added.webhookUrl, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-gitlab-event": "Issue Hook",
        "x-gitlab-event-uuid": "u-1",
      },
      body: JSON.stringify(payload),
    });
    expect(asGithub.status).toBe(401);
    expect(await runCount()).toBe(runsBefore);
    const uuid = "6f1c8a3e-replayed-event";
    const runId = startedRun(
      await gitlab.deliver(added.webhookUrl, added.webhookSecret, "Issue Hook", payload, uuid),
    );
    const replayed = await gitlab.deliver(added.webhookUrl, added.webhookSecret, "Issue Hook", payload, uuid);
    expect(answer(replayed)).toMatchObject({ outcome: "duplicate", run_id: runId });
    // The same body under a new event UUID is the same delivery sent again.
    const resent = await gitlab.deliver(added.webhookUrl, added.webhookSecret, "Issue Hook", payload);
    expect(answer(resent)).toMatchObject({ outcome: "duplicate", run_id: runId });
    expect(await runCount()).toBe(runsBefore + 1);
    await waitForRun(server.url, runId, isFinal, 120_000);
  }, 150_000);

  it("another tenant's forge is never reached by this forge's hook, nor seen or removed by this tenant", async () => {
    const token = async (body: Record<string, string>) =>
      (await api<{ token: string }>(server.url, "POST", "/api/tokens", body)).body.token;
    const acme = await token({ kind: "user", name: "acme member", tenant_id: "acme" });
    const globex = await token({ kind: "user", name: "globex member", tenant_id: "globex" });
    // A member's GitLab forge is on gitlab.com, which nothing here reaches: no delivery to it may
    // call out, and none is acted on with another forge's token.
    const acmeForge = await addForge("gitlab", {
      serverUrl: server.url,
      forgeUrl: "https://gitlab.com",
      repo: "acme/app",
      botToken: "glpat-acme",
      agent: "openai",
      test: "true",
      token: acme,
    });
    const runsBefore = await runCount();
    const issue = gitlab.createIssue({ title: "Cross", description: "x", author: "alice" });
    const payload = gitlab.payloads.labeled("acme/app", issue, "runyard", "alice");
    // This forge's secret on acme's forge, acme's on this one: 401 in the same words as no forge.
    const crossed = await gitlab.deliver(acmeForge.webhookUrl, added.webhookSecret, "Issue Hook", payload);
    const crossedBack = await gitlab.deliver(
      added.webhookUrl,
      acmeForge.webhookSecret,
      "Issue Hook",
      payload,
    );
    const none = await gitlab.deliver(
      added.webhookUrl.replace(added.id, "frg_nope"),
      added.webhookSecret,
      "Issue Hook",
      payload,
    );
    for (const refused of [crossed, crossedBack, none]) expect(refused.status).toBe(401);
    expect(JSON.parse(crossed.body).error.message).toBe(JSON.parse(none.body).error.message);
    expect(await runCount()).toBe(runsBefore);
    // globex neither sees acme's forge nor removes it.
    const listed = await api<{ forges: Array<{ id: string }> }>(
      server.url,
      "GET",
      "/api/forges",
      undefined,
      globex,
    );
    expect(listed.body.forges.map((f) => f.id)).not.toContain(acmeForge.id);
    const removed = await api(server.url, "DELETE", `/api/forges/${acmeForge.id}`, undefined, globex);
    expect(removed.status).toBe(404);
    // A member may not point the server at a GitLab of their own network.
    const own = await api<{ error: { code: string; hint: string } }>(
      server.url,
      "POST",
      "/api/forges",
      { kind: "gitlab", repo: "acme/app", token: "glpat-x", api_url: gitlab.url },
      acme,
    );
    expect(own.status).toBe(403);
    expect(own.body.error.hint).toContain("https://gitlab.com/api/v4");
  });
});

describe("adding a forge", () => {
  it("refuses an unknown kind with the kinds listed, before reading a token", async () => {
    const refused = await runCli(
      ["forge", "add", "bitbucket", "--repo", "acme/app", "--secret-stdin", "--server", server.url],
      { input: "x", env: { RUNYARD_TOKEN: "unused" } },
    );
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('unknown forge kind "bitbucket"');
    expect(refused.stderr).toMatch(/github, gitlab, gitea/);
    const viaApi = await api<{ error: { code: string; message: string } }>(
      server.url,
      "POST",
      "/api/forges",
      {
        kind: "bitbucket",
        repo: "acme/app",
        token: "x",
      },
    );
    expect(viaApi.status).toBe(400);
    expect(viaApi.body.error.message).toContain("kind must be one of github, gitlab, gitea");
  });

  it("takes a GitLab subgroup's project and refuses a nested path elsewhere", async () => {
    const nested = await api<{ repo: string; api_url: string }>(server.url, "POST", "/api/forges", {
      kind: "gitlab",
      repo: "acme/platform/app",
      token: "glpat-nested",
    });
    expect(nested.status).toBe(201);
    expect(nested.body).toMatchObject({ repo: "acme/platform/app", api_url: "https://gitlab.com/api/v4" });
    const gitea = await api<{ error: { message: string } }>(server.url, "POST", "/api/forges", {
      kind: "gitea",
      repo: "acme/platform/app",
      token: "x",
    });
    expect(gitea.status).toBe(400);
    expect(gitea.body.error.message).toContain("repo must be OWNER/NAME on gitea");
    // A path the server would resolve to another API call than the repo's is no repo.
    for (const [kind, repo] of [
      ["gitea", "acme/.."],
      ["github", "../app"],
      ["gitlab", "acme/../../users"],
    ]) {
      const dots = await api<{ error: { code: string } }>(server.url, "POST", "/api/forges", {
        kind,
        repo,
        token: "x",
      });
      expect(dots.status, `${kind} ${repo}`).toBe(400);
      expect(dots.body.error.code).toBe("INVALID_INPUT");
    }
  });
});
