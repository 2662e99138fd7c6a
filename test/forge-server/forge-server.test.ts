import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunyardError } from "../../src/core/errors.js";
import { GiteaClient } from "../../src/forges/gitea.js";
import { GitHubClient } from "../../src/forges/github.js";
import { GitLabClient } from "../../src/forges/gitlab.js";
import { tempDir } from "../helpers/cli.js";
import { startScriptedGitea } from "./gitea.js";
import { startScriptedGitLab } from "./gitlab.js";
import { type ScriptedForge, startScriptedForge } from "./server.js";

let forge: ScriptedForge;
let root: string;

beforeAll(async () => {
  root = tempDir("runyard-forge-server-");
  forge = await startScriptedForge(root);
  forge.createRepo("acme/app", { "README.md": "app\n" });
  forge.addToken("ghp_writer", "bot");
  forge.addToken("ghp_reader", "carol");
  forge.setPermission("bot", "write");
  forge.setPermission("carol", "read");
});

afterAll(() => forge?.close());

/** git as a child the event loop waits on: the scripted forge answers it from this process. */
const git = (cwd: string, ...args: string[]): Promise<{ status: number | null }> =>
  new Promise((resolve) => {
    const child = spawn("git", args, {
      cwd,
      stdio: "ignore",
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    });
    child.on("close", (status) => resolve({ status }));
  });

describe("the scripted GitHub", () => {
  it("serves its repos over git smart HTTP: clone with a token, push only with write", async () => {
    const withToken = (token: string) =>
      forge.gitUrl("acme/app").replace("http://", `http://x-access-token:${token}@`);
    const clone = join(root, "clone");
    expect((await git(root, "clone", "-q", withToken("ghp_reader"), clone)).status).toBe(0);
    await git(clone, "checkout", "-q", "-b", "feature");
    await git(clone, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty", "-m", "x");
    expect((await git(clone, "push", "-q", withToken("ghp_reader"), "feature")).status).not.toBe(0);
    expect((await git(clone, "push", "-q", withToken("ghp_writer"), "feature")).status).toBe(0);
    expect((await git(root, "ls-remote", forge.gitUrl("acme/app"))).status).not.toBe(0);
  });

  it("answers runyard's GitHub client as GitHub does", async () => {
    const client = new GitHubClient(forge.url, "acme/app", "ghp_writer");
    expect(await client.repository()).toEqual({ cloneUrl: forge.gitUrl("acme/app"), defaultBranch: "main" });
    expect(await client.permission("bot")).toBe("write");
    expect(await client.permission("carol")).toBe("read");
    expect(await client.permission("mallory")).toBe("none");
    const pull = await client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" });
    expect(pull.number).toBeGreaterThan(0);
    await expect(
      client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" }),
    ).rejects.toThrow(/422: Validation Failed: A pull request already exists/);
    await expect(
      client.openPullRequest({ head: "nope", base: "main", title: "T", body: "B" }),
    ).rejects.toThrow(/422/);
    await client.comment({ pull: pull.number }, "done");
    expect(forge.comments.at(-1)).toMatchObject({ issue: pull.number, body: "done", user: "bot" });
    await expect(new GitHubClient(forge.url, "acme/app", "wrong").repository()).rejects.toThrow(
      /401: Bad credentials/,
    );
    await expect(
      new GitHubClient(forge.url, "acme/app", "ghp_reader").comment({ pull: pull.number }, "x"),
    ).rejects.toThrow(/403/);
  });

  it("signs its webhooks as GitHub does", async () => {
    let received: { signature?: string; event?: string; body: string } = { body: "" };
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (c) => (body += c));
      req.on("end", () => {
        received = {
          signature: req.headers["x-hub-signature-256"] as string,
          event: req.headers["x-github-event"] as string,
          body,
        };
        res.end("ok");
      });
    });
    await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
    const issue = forge.createIssue("acme/app", { title: "t", body: "b", user: "bot" });
    await forge.deliver(
      `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/`,
      "s3cret",
      "issues",
      forge.payloads.labeled("acme/app", issue, "runyard", "bot"),
    );
    receiver.close();
    expect(received.event).toBe("issues");
    expect(received.signature).toBe(
      `sha256=${createHmac("sha256", "s3cret").update(received.body).digest("hex")}`,
    );
  });
});

describe("the scripted GitLab", () => {
  it("answers runyard's GitLab client as GitLab does, and serves its projects over git", async () => {
    const gitlab = await startScriptedGitLab(join(root, "gitlab"));
    try {
      gitlab.createProject("acme/platform/app", { "README.md": "app\n" });
      gitlab.addToken("glpat-writer", "bot");
      gitlab.addToken("glpat-reader", "carol");
      gitlab.setAccess("bot", 30);
      gitlab.setAccess("carol", 20);
      gitlab.setAccess("owner", 50);
      gitlab.addUser("stranger");
      const api = `${gitlab.url}/api/v4`;
      const client = new GitLabClient(api, "acme/platform/app", "glpat-writer");
      expect(await client.repository()).toEqual({
        cloneUrl: gitlab.gitUrl("acme/platform/app"),
        defaultBranch: "main",
      });
      expect(await client.permission("bot")).toBe("write");
      expect(await client.permission("carol")).toBe("read");
      expect(await client.permission("owner")).toBe("admin");
      expect(await client.permission("stranger")).toBe("none");
      expect(await client.permission("nobody")).toBe("none");
      const withToken = (token: string) =>
        gitlab.gitUrl("acme/platform/app").replace("http://", `http://oauth2:${token}@`);
      const clone = join(root, "gitlab-clone");
      expect((await git(root, "clone", "-q", withToken("glpat-reader"), clone)).status).toBe(0);
      await git(clone, "checkout", "-q", "-b", "feature");
      await git(
        clone,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
      );
      expect((await git(clone, "push", "-q", withToken("glpat-reader"), "feature")).status).not.toBe(0);
      expect((await git(clone, "push", "-q", withToken("glpat-writer"), "feature")).status).toBe(0);
      const request = await client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" });
      expect(request).toEqual({ number: 1, url: `${gitlab.url}/acme/platform/app/-/merge_requests/1` });
      await expect(
        client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" }),
      ).rejects.toThrow(/409: .*Another open merge request already exists/);
      const issue = gitlab.createIssue({ title: "t", description: "d", author: "carol" });
      await client.comment({ pull: request.number }, "on the merge request");
      await client.comment({ issue: issue.iid }, "on the issue");
      expect(gitlab.notes.map((n) => [n.on, n.body])).toEqual([
        ["merge_requests/1", "on the merge request"],
        [`issues/${issue.iid}`, "on the issue"],
      ]);
      await expect(new GitLabClient(api, "acme/platform/app", "wrong").repository()).rejects.toThrow(
        /401: 401 Unauthorized/,
      );
      const error = await new GitLabClient(api, "acme/platform/app", "glpat-reader")
        .openPullRequest({ head: "feature", base: "main", title: "T", body: "B" })
        .catch((e: unknown) => e);
      expect(error).toMatchObject({ code: "FORGE_FAILED" });
      expect((error as RunyardError).hint).toContain("Developer");
    } finally {
      await gitlab.close();
    }
  });
});

describe("the scripted Gitea", () => {
  it("answers runyard's Gitea client as Gitea does, and serves its repos over git", async () => {
    const gitea = await startScriptedGitea(join(root, "gitea"));
    try {
      gitea.createRepo("acme/app", { "README.md": "app\n" });
      gitea.addToken("gitea-admin", "bot");
      gitea.addToken("gitea-reader", "carol");
      gitea.setPermission("bot", "admin");
      gitea.setPermission("carol", "read");
      gitea.setPermission("owner", "owner");
      const api = `${gitea.url}/api/v1`;
      const client = new GiteaClient(api, "acme/app", "gitea-admin");
      expect(await client.repository()).toEqual({
        cloneUrl: gitea.gitUrl("acme/app"),
        defaultBranch: "main",
      });
      expect(await client.permission("carol")).toBe("read");
      expect(await client.permission("owner")).toBe("admin");
      expect(await client.permission("nobody")).toBe("none");
      await expect(new GiteaClient(api, "acme/app", "gitea-reader").permission("bot")).rejects.toThrow(
        /403: Only admins can query/,
      );
      const withToken = (token: string) => gitea.gitUrl("acme/app").replace("http://", `http://x:${token}@`);
      const clone = join(root, "gitea-clone");
      expect((await git(root, "clone", "-q", withToken("gitea-reader"), clone)).status).toBe(0);
      await git(clone, "checkout", "-q", "-b", "feature");
      await git(
        clone,
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@e",
        "commit",
        "-q",
        "--allow-empty",
        "-m",
        "x",
      );
      expect((await git(clone, "push", "-q", withToken("gitea-reader"), "feature")).status).not.toBe(0);
      expect((await git(clone, "push", "-q", withToken("gitea-admin"), "feature")).status).toBe(0);
      const pull = await client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" });
      expect(pull.number).toBe(1);
      await expect(
        client.openPullRequest({ head: "feature", base: "main", title: "T", body: "B" }),
      ).rejects.toThrow(/409: pull request already exists/);
      await client.comment({ pull: pull.number }, "done");
      expect(gitea.comments.at(-1)).toMatchObject({ issue: pull.number, body: "done", user: "bot" });
      await expect(new GiteaClient(api, "acme/app", "wrong").repository()).rejects.toThrow(/401/);
    } finally {
      await gitea.close();
    }
  });
});
