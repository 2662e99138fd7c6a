/**
 * A scripted Gitea (and Forgejo, which speaks the same API) for tests: Gitea cannot be reached
 * from here, so this speaks the REST v1 shapes runyard's Gitea client uses (repos, a
 * collaborator's permission, which only a repo admin may ask of another user, pull requests,
 * issue comments, Gitea's error bodies), serves its repos over git smart HTTP through `git
 * http-backend` (a push needs a token with write), and sends webhooks as Gitea does: signed in
 * `X-Gitea-Signature` (the hex HMAC-SHA256 of the body), the event in `X-Gitea-Event` and its
 * kind in `X-Gitea-Event-Type`, the delivery's UUID in `X-Gitea-Delivery`.
 */
import { createHmac, randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { recordStart } from "../cost/record.js";
import { basicToken, branchExists, createBareRepo, readBody, serveGit } from "./git-http.js";

export type GiteaPermission = "owner" | "admin" | "write" | "read";

export interface GiteaIssue {
  number: number;
  title: string;
  body: string;
  user: string;
  labels: string[];
  pull?: { head: string; base: string; url: string };
}

export interface GiteaComment {
  id: number;
  issue: number;
  user: string;
  body: string;
}

export interface ScriptedGitea {
  /** The instance's URL; its API is under /api/v1. */
  url: string;
  gitUrl(repo: string): string;
  createRepo(repo: string, files: Record<string, string>): string;
  addToken(token: string, user: string): void;
  setPermission(user: string, permission: GiteaPermission): void;
  createIssue(issue: { title: string; body: string; user: string }): GiteaIssue;
  /** Issues and pull requests, numbered as one. */
  issues: GiteaIssue[];
  comments: GiteaComment[];
  requests: string[];
  /** Delivers a webhook as Gitea does, signed with `secret`. */
  deliver(
    url: string,
    secret: string | undefined,
    event: string,
    eventType: string,
    payload: unknown,
    deliveryId?: string,
  ): Promise<{ status: number; body: string }>;
  payloads: {
    /** `issues` with action `label_updated` (event type `issue_label`): the labels the issue has now. */
    labelUpdated(repo: string, issue: GiteaIssue, label: string, sender: string): unknown;
    /** `issue_comment` on an issue or a pull request. */
    comment(repo: string, issue: GiteaIssue, body: string, sender: string): unknown;
  };
  close(): Promise<void>;
}

export async function startScriptedGitea(root: string): Promise<ScriptedGitea> {
  recordStart("forge server");
  const reposRoot = join(root, "repos");
  mkdirSync(reposRoot, { recursive: true });
  const tokens = new Map<string, string>();
  const permissions = new Map<string, GiteaPermission>();
  const repos = new Set<string>();
  const issues: GiteaIssue[] = [];
  const comments: GiteaComment[] = [];
  const requests: string[] = [];
  let nextId = 3000;
  let base = "";

  const userOf = (req: IncomingMessage): string | undefined => {
    const header = req.headers.authorization ?? "";
    const token = /^(?:token|Bearer) (\S+)$/.exec(header)?.[1] ?? basicToken(header);
    return token === undefined ? undefined : tokens.get(token);
  };
  const permissionOf = (user: string | undefined) => (user === undefined ? undefined : permissions.get(user));
  const mayWrite = (user: string | undefined) =>
    ["owner", "admin", "write"].includes(permissionOf(user) ?? "");
  const isAdmin = (user: string | undefined) => ["owner", "admin"].includes(permissionOf(user) ?? "");

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { "content-type": "application/json;charset=utf-8", "x-gitea-version": "1.22.3" });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string) =>
    send(res, status, { message, url: `${base}/api/swagger` });
  const userJson = (login: string) => ({ id: login.length, login, username: login, full_name: "" });

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", base);
    if (!url.pathname.startsWith("/api/")) {
      const user = userOf(req);
      return serveGit(req, res, url, {
        reposRoot,
        pathInfo: url.pathname,
        user,
        mayWrite: mayWrite(user),
        realm: "Gitea",
      });
    }
    requests.push(`${req.method} ${url.pathname}`);
    const user = userOf(req);
    if (!user) return error(res, 401, "token is required");
    const match = /^\/api\/v1\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!match) return error(res, 404, "not found");
    const repo = `${decodeURIComponent(match[1] ?? "")}/${decodeURIComponent(match[2] ?? "")}`;
    if (!repos.has(repo) || !permissionOf(user)) return error(res, 404, "The target couldn't be found.");
    const rest = match[3] ?? "";
    if (req.method === "GET" && rest === "") {
      return send(res, 200, {
        id: 1,
        full_name: repo,
        private: true,
        default_branch: "main",
        clone_url: `${base}/${repo}.git`,
        html_url: `${base}/${repo}`,
        permissions: { admin: isAdmin(user), push: mayWrite(user), pull: true },
      });
    }
    const permission = /^\/collaborators\/([^/]+)\/permission$/.exec(rest);
    if (req.method === "GET" && permission) {
      const who = decodeURIComponent(permission[1] ?? "");
      if (!isAdmin(user) && who !== user) {
        return error(
          res,
          403,
          "Only admins can query all permissions, repo admins can query all repo permissions, collaborators can query only their own",
        );
      }
      const role = permissions.get(who);
      if (!role) return error(res, 404, `user does not exist [uid: 0, name: ${who}]`);
      return send(res, 200, { permission: role, role_name: role, user: userJson(who) });
    }
    if (req.method === "POST" && rest === "/pulls") {
      if (!mayWrite(user)) return error(res, 403, "user should have permission to write to target branch");
      const body = JSON.parse((await readBody(req)).toString()) as {
        head: string;
        base: string;
        title: string;
        body: string;
      };
      if (!branchExists(reposRoot, repo, body.head)) return error(res, 404, "The target couldn't be found.");
      const open = issues.find((i) => i.pull?.head === body.head);
      if (open) {
        return error(
          res,
          409,
          `pull request already exists for these targets [id: ${open.number}, issue_id: ${open.number}, head_repo_id: 1, base_repo_id: 1, head_branch: ${body.head}, base_branch: ${body.base}]`,
        );
      }
      const number = issues.length + 1;
      const pull: GiteaIssue = {
        number,
        title: body.title,
        body: body.body,
        user,
        labels: [],
        pull: { head: body.head, base: body.base, url: `${base}/${repo}/pulls/${number}` },
      };
      issues.push(pull);
      return send(res, 201, {
        id: nextId++,
        number,
        html_url: pull.pull?.url,
        state: "open",
        title: body.title,
        body: body.body,
        head: { ref: body.head, label: body.head },
        base: { ref: body.base, label: body.base },
        user: userJson(user),
      });
    }
    const commentsOf = /^\/issues\/(\d+)\/comments$/.exec(rest);
    if (commentsOf && req.method === "POST") {
      const number = Number(commentsOf[1]);
      if (!issues.some((i) => i.number === number)) return error(res, 404, "The target couldn't be found.");
      const { body } = JSON.parse((await readBody(req)).toString()) as { body: string };
      const comment = { id: nextId++, issue: number, user, body };
      comments.push(comment);
      return send(res, 201, {
        id: comment.id,
        body,
        user: userJson(user),
        html_url: `${base}/${repo}/issues/${number}#issuecomment-${comment.id}`,
      });
    }
    return error(res, 404, "not found");
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const repository = (repo: string) => ({
    id: 1,
    full_name: repo,
    name: repo.split("/")[1],
    owner: userJson(repo.split("/")[0] ?? ""),
    clone_url: `${base}/${repo}.git`,
    html_url: `${base}/${repo}`,
  });
  const issueJson = (issue: GiteaIssue) => ({
    id: issue.number + 100,
    number: issue.number,
    title: issue.title,
    body: issue.body,
    user: userJson(issue.user),
    labels: issue.labels.map((name, i) => ({ id: i + 1, name, color: "e11d21" })),
    state: "open",
    pull_request: issue.pull ? { merged: false, html_url: issue.pull.url } : null,
    updated_at: new Date().toISOString(),
  });

  return {
    url: base,
    gitUrl: (repo) => `${base}/${repo}.git`,
    createRepo(repo, files) {
      repos.add(repo);
      return createBareRepo(root, reposRoot, repo, files);
    },
    addToken: (token, user) => tokens.set(token, user),
    setPermission: (user, permission) => permissions.set(user, permission),
    createIssue(input) {
      const issue = { number: issues.length + 1, labels: [], ...input };
      issues.push(issue);
      return issue;
    },
    issues,
    comments,
    requests,
    async deliver(url, secret, event, eventType, payload, deliveryId = randomUUID()) {
      const body = JSON.stringify(payload);
      const signature =
        secret === undefined ? undefined : createHmac("sha256", secret).update(body).digest("hex");
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "Go-http-client/1.1",
          "x-gitea-event": event,
          "x-gitea-event-type": eventType,
          "x-gitea-delivery": deliveryId,
          "x-gogs-event": event,
          "x-gogs-delivery": deliveryId,
          ...(signature !== undefined
            ? { "x-gitea-signature": signature, "x-hub-signature-256": `sha256=${signature}` }
            : {}),
        },
        body,
      });
      return { status: response.status, body: await response.text() };
    },
    payloads: {
      labelUpdated(repo, issue, label, sender) {
        issue.labels = [...issue.labels.filter((l) => l !== label), label];
        return {
          action: "label_updated",
          number: issue.number,
          issue: issueJson(issue),
          repository: repository(repo),
          sender: userJson(sender),
          commit_id: "",
        };
      },
      comment: (repo, issue, body, sender) => ({
        action: "created",
        issue: issueJson(issue),
        comment: { id: nextId++, body, user: userJson(sender), html_url: "" },
        repository: repository(repo),
        sender: userJson(sender),
        is_pull: issue.pull !== undefined,
      }),
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
