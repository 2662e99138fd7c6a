/**
 * A scripted GitHub for tests: GitHub cannot be reached from here, so as the scripted model
 * server stands in for model APIs, this speaks the REST shapes runyard's GitHub client uses
 * (repos, collaborator permissions, pull requests, issue comments, GitHub's error bodies), serves
 * its repos over git smart HTTP through `git http-backend` (a push needs a token with write), and
 * sends webhooks signed as GitHub signs them. It is the only stand-in of the forge tests.
 */
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { recordStart } from "../cost/record.js";
import { basicToken, branchExists, createBareRepo, readBody, serveGit } from "./git-http.js";

export type Permission = "admin" | "maintain" | "write" | "triage" | "read";

export interface ForgeIssue {
  number: number;
  title: string;
  body: string;
  user: string;
  labels: string[];
  pull?: { head: string; base: string; url: string };
}

export interface ForgeComment {
  id: number;
  issue: number;
  user: string;
  body: string;
}

export interface ScriptedForge {
  /** The REST API's base URL (as https://api.github.com). */
  url: string;
  /** The clone URL of `owner/name`. */
  gitUrl(repo: string): string;
  /** Makes a bare repo with one commit of `files` on `main`. */
  createRepo(repo: string, files: Record<string, string>): string;
  /** A token acting as `user`. */
  addToken(token: string, user: string): void;
  setPermission(user: string, permission: Permission): void;
  /**
   * Answers the next `count` permission calls with `status` and GitHub's error body (as GitHub
   * does when it is down: a 500 or 502 that a later call does not get).
   */
  failPermission(status: number, count?: number): void;
  createIssue(repo: string, issue: { title: string; body: string; user: string }): ForgeIssue;
  issues: ForgeIssue[];
  comments: ForgeComment[];
  /** Every API request, as `METHOD /path`. */
  requests: string[];
  /** Delivers a webhook as GitHub does: signed with `secret`, with its event and delivery id. */
  deliver(
    url: string,
    secret: string | undefined,
    event: string,
    payload: unknown,
    deliveryId?: string,
  ): Promise<{ status: number; body: string }>;
  /** GitHub's payloads for the events runyard acts on. */
  payloads: {
    labeled(repo: string, issue: ForgeIssue, label: string, sender: string): unknown;
    comment(repo: string, issue: ForgeIssue, body: string, sender: string): unknown;
    reviewComment(repo: string, pull: ForgeIssue, body: string, sender: string): unknown;
  };
  close(): Promise<void>;
}

export async function startScriptedForge(root: string): Promise<ScriptedForge> {
  recordStart("forge server");
  const reposRoot = join(root, "repos");
  mkdirSync(reposRoot, { recursive: true });
  const tokens = new Map<string, string>();
  const permissions = new Map<string, Permission>();
  const issues: ForgeIssue[] = [];
  const comments: ForgeComment[] = [];
  const requests: string[] = [];
  let nextCommentId = 1000;
  let permissionFailures: { status: number; left: number } = { status: 500, left: 0 };
  let base = "";

  const userOf = (req: IncomingMessage): string | undefined => {
    const header = req.headers.authorization ?? "";
    const bearer = /^(?:Bearer|token) (\S+)$/.exec(header)?.[1];
    if (bearer) return tokens.get(bearer);
    const basic = basicToken(header);
    return basic === undefined ? undefined : tokens.get(basic);
  };
  const mayWrite = (user: string | undefined) =>
    user !== undefined && ["admin", "maintain", "write"].includes(permissions.get(user) ?? "");

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, {
      "content-type": "application/json; charset=utf-8",
      "x-github-request-id": randomUUID(),
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": "4999",
      ...headers,
    });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string, errors?: unknown[]) =>
    send(res, status, {
      message,
      ...(errors ? { errors } : {}),
      documentation_url: "https://docs.github.com/rest",
    });

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", base);
    if (url.pathname.startsWith("/git/")) return gitHttp(req, res, url);
    requests.push(`${req.method} ${url.pathname}`);
    const user = userOf(req);
    if (!user) return error(res, 401, "Bad credentials");
    const match = /^\/repos\/([^/]+\/[^/]+)(\/.*)?$/.exec(url.pathname);
    if (!match) return error(res, 404, "Not Found");
    const repo = match[1]!;
    const rest = match[2] ?? "";
    if (req.method === "GET" && rest === "") {
      return send(res, 200, {
        id: 1,
        full_name: repo,
        private: true,
        default_branch: "main",
        clone_url: `${base}/git/${repo}.git`,
        permissions: { admin: false, push: mayWrite(user), pull: true },
      });
    }
    const permission = /^\/collaborators\/([^/]+)\/permission$/.exec(rest);
    if (req.method === "GET" && permission) {
      if (permissionFailures.left > 0) {
        permissionFailures.left--;
        return error(res, permissionFailures.status, "Server Error");
      }
      const who = decodeURIComponent(permission[1]!);
      const role = permissions.get(who);
      if (!role) return error(res, 404, `${who} is not a user`);
      const legacy = role === "maintain" ? "write" : role === "triage" ? "read" : role;
      return send(res, 200, { permission: legacy, role_name: role, user: { login: who } });
    }
    if (req.method === "POST" && rest === "/pulls") {
      if (!mayWrite(user)) return error(res, 403, "Resource not accessible by personal access token");
      const body = JSON.parse((await readBody(req)).toString()) as {
        head: string;
        base: string;
        title: string;
        body: string;
      };
      if (!branchExists(reposRoot, repo, body.head)) {
        return error(res, 422, "Validation Failed", [
          { resource: "PullRequest", field: "head", code: "invalid" },
        ]);
      }
      if (issues.some((i) => i.pull?.head === body.head)) {
        return error(res, 422, "Validation Failed", [
          {
            resource: "PullRequest",
            code: "custom",
            message: `A pull request already exists for ${repo.split("/")[0]}:${body.head}.`,
          },
        ]);
      }
      const number = issues.length + 1;
      const pull: ForgeIssue = {
        number,
        title: body.title,
        body: body.body,
        user,
        labels: [],
        pull: { head: body.head, base: body.base, url: `${base}/${repo}/pull/${number}` },
      };
      issues.push(pull);
      return send(res, 201, {
        number,
        html_url: pull.pull?.url,
        state: "open",
        title: body.title,
        body: body.body,
        head: { ref: body.head },
        base: { ref: body.base },
      });
    }
    const commentsOf = /^\/issues\/(\d+)\/comments$/.exec(rest);
    if (commentsOf && req.method === "POST") {
      if (!mayWrite(user)) return error(res, 403, "Resource not accessible by personal access token");
      const number = Number(commentsOf[1]);
      if (!issues.some((i) => i.number === number)) return error(res, 404, "Not Found");
      const { body } = JSON.parse((await readBody(req)).toString()) as { body: string };
      const comment = { id: nextCommentId++, issue: number, user, body };
      comments.push(comment);
      return send(res, 201, {
        id: comment.id,
        body,
        user: { login: user, type: "Bot" },
        html_url: `${base}/${repo}/issues/${number}#issuecomment-${comment.id}`,
      });
    }
    return error(res, 404, "Not Found");
  });

  /** Its repos over git smart HTTP: clone and fetch with any token, push with one that may write. */
  const gitHttp = (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const user = userOf(req);
    return serveGit(req, res, url, {
      reposRoot,
      pathInfo: url.pathname.slice("/git".length),
      user,
      mayWrite: mayWrite(user),
      realm: "GitHub",
    });
  };

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const repository = (repo: string) => ({
    full_name: repo,
    name: repo.split("/")[1],
    owner: { login: repo.split("/")[0] },
    clone_url: `${base}/git/${repo}.git`,
  });
  const issueJson = (issue: ForgeIssue) => ({
    number: issue.number,
    title: issue.title,
    body: issue.body,
    user: { login: issue.user, type: "User" },
    labels: issue.labels.map((name) => ({ name })),
    ...(issue.pull ? { pull_request: { url: issue.pull.url } } : {}),
  });
  const sender = (login: string) => ({ login, type: "User" });

  return {
    url: base,
    gitUrl: (repo) => `${base}/git/${repo}.git`,
    createRepo: (repo, files) => createBareRepo(root, reposRoot, repo, files),
    addToken: (token, user) => tokens.set(token, user),
    setPermission: (user, permission) => permissions.set(user, permission),
    failPermission: (status, count = 1) => {
      permissionFailures = { status, left: count };
    },
    createIssue(_repo, input) {
      const issue = {
        number: issues.length + 1,
        title: input.title,
        body: input.body,
        user: input.user,
        labels: [],
      };
      issues.push(issue);
      return issue;
    },
    issues,
    comments,
    requests,
    async deliver(url, secret, event, payload, deliveryId = randomUUID()) {
      const body = JSON.stringify(payload);
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "GitHub-Hookshot/scripted",
          "x-github-event": event,
          "x-github-delivery": deliveryId,
          ...(secret
            ? { "x-hub-signature-256": `sha256=${createHmac("sha256", secret).update(body).digest("hex")}` }
            : {}),
        },
        body,
      });
      return { status: response.status, body: await response.text() };
    },
    payloads: {
      labeled: (repo, issue, label, who) => ({
        action: "labeled",
        label: { name: label },
        issue: issueJson(issue),
        repository: repository(repo),
        sender: sender(who),
      }),
      comment: (repo, issue, body, who) => ({
        action: "created",
        issue: issueJson(issue),
        comment: { id: nextCommentId++, body, user: sender(who) },
        repository: repository(repo),
        sender: sender(who),
      }),
      reviewComment: (repo, pull, body, who) => ({
        action: "created",
        pull_request: { number: pull.number, head: { ref: pull.pull?.head }, base: { ref: pull.pull?.base } },
        comment: { id: nextCommentId++, body, user: sender(who), path: "hello.py", line: 1 },
        repository: repository(repo),
        sender: sender(who),
      }),
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
