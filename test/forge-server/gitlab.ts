/**
 * A scripted GitLab for tests: GitLab cannot be reached from here, so this speaks the REST v4
 * shapes runyard's GitLab client uses (projects by their URL-encoded path, users by username,
 * project members with inherited access levels, merge requests, issue and merge request notes,
 * GitLab's error bodies), serves its projects over git smart HTTP through `git http-backend` (a
 * push needs a token of a Developer or more), and sends webhooks as GitLab does: the secret in
 * `X-Gitlab-Token`, the event in `X-Gitlab-Event`, its UUID in `X-Gitlab-Event-UUID`.
 */
import { randomUUID } from "node:crypto";
import { mkdirSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { recordStart } from "../cost/record.js";
import { basicToken, branchExists, createBareRepo, readBody, serveGit } from "./git-http.js";

/** GitLab's access levels: Guest 10, Reporter 20, Developer 30, Maintainer 40, Owner 50. */
export type AccessLevel = 10 | 20 | 30 | 40 | 50;

export interface GitLabIssue {
  iid: number;
  title: string;
  description: string;
  author: string;
  labels: string[];
}

export interface GitLabMergeRequest {
  iid: number;
  title: string;
  description: string;
  source_branch: string;
  target_branch: string;
  web_url: string;
}

export interface GitLabNote {
  id: number;
  /** `issues/IID` or `merge_requests/IID`. */
  on: string;
  author: string;
  body: string;
}

export interface ScriptedGitLab {
  /** The instance's URL (as https://gitlab.example.com); its API is under /api/v4. */
  url: string;
  /** The project's clone URL (`http_url_to_repo`). */
  gitUrl(project: string): string;
  createProject(project: string, files: Record<string, string>): string;
  /** A personal access token of `user`. */
  addToken(token: string, user: string): void;
  /** Makes `user` a member of every project with `level`. */
  setAccess(user: string, level: AccessLevel): void;
  /** A user GitLab knows who is no member. */
  addUser(user: string): void;
  createIssue(issue: { title: string; description: string; author: string }): GitLabIssue;
  issues: GitLabIssue[];
  mergeRequests: GitLabMergeRequest[];
  notes: GitLabNote[];
  /** Every API request, as `METHOD /path`. */
  requests: string[];
  /** Delivers a webhook as GitLab does: the secret token, the event, the event's UUID. */
  deliver(
    url: string,
    secretToken: string | undefined,
    event: string,
    payload: unknown,
    eventUuid?: string,
  ): Promise<{ status: number; body: string }>;
  payloads: {
    /** An "Issue Hook" whose labels gained `label`. */
    labeled(project: string, issue: GitLabIssue, label: string, user: string): unknown;
    /** A "Note Hook" on an issue. */
    issueNote(project: string, issue: GitLabIssue, body: string, user: string): unknown;
    /** A "Note Hook" on a merge request; `onLine`: a comment on a line of its diff (a DiffNote). */
    mergeRequestNote(
      project: string,
      request: GitLabMergeRequest,
      body: string,
      user: string,
      onLine?: boolean,
    ): unknown;
  };
  close(): Promise<void>;
}

export async function startScriptedGitLab(root: string): Promise<ScriptedGitLab> {
  recordStart("forge server");
  const reposRoot = join(root, "repos");
  mkdirSync(reposRoot, { recursive: true });
  const tokens = new Map<string, string>();
  const userIds = new Map<string, number>();
  const access = new Map<string, AccessLevel>();
  const projects = new Map<string, number>();
  const issues: GitLabIssue[] = [];
  const mergeRequests: GitLabMergeRequest[] = [];
  const notes: GitLabNote[] = [];
  const requests: string[] = [];
  let nextId = 5000;
  let base = "";

  const userId = (user: string): number => {
    let id = userIds.get(user);
    if (id === undefined) {
      id = userIds.size + 1;
      userIds.set(user, id);
    }
    return id;
  };
  const userOf = (req: IncomingMessage): string | undefined => {
    const privateToken = req.headers["private-token"];
    if (typeof privateToken === "string") return tokens.get(privateToken);
    const header = req.headers.authorization ?? "";
    const bearer = /^Bearer (\S+)$/.exec(header)?.[1];
    if (bearer) return tokens.get(bearer);
    const basic = basicToken(header);
    return basic === undefined ? undefined : tokens.get(basic);
  };
  const levelOf = (user: string | undefined) => (user === undefined ? 0 : (access.get(user) ?? 0));
  const userJson = (user: string) => ({
    id: userId(user),
    username: user,
    name: user,
    state: "active",
    avatar_url: null,
    web_url: `${base}/${user}`,
  });

  const send = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, {
      "content-type": "application/json",
      "x-request-id": randomUUID(),
      "x-gitlab-meta": "{}",
      "ratelimit-limit": "2000",
    });
    res.end(JSON.stringify(body));
  };

  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", base);
    if (!url.pathname.startsWith("/api/")) {
      // `/GROUP/NAME.git/...`: the project over git smart HTTP.
      const user = userOf(req);
      return serveGit(req, res, url, {
        reposRoot,
        pathInfo: url.pathname,
        user,
        mayWrite: levelOf(user) >= 30,
        realm: "GitLab",
      });
    }
    requests.push(`${req.method} ${url.pathname}${url.search}`);
    const user = userOf(req);
    if (!user) return send(res, 401, { message: "401 Unauthorized" });
    if (req.method === "GET" && url.pathname === "/api/v4/users") {
      const wanted = url.searchParams.get("username") ?? "";
      return send(res, 200, userIds.has(wanted) ? [userJson(wanted)] : []);
    }
    const match = /^\/api\/v4\/projects\/([^/]+)(\/.*)?$/.exec(url.pathname);
    if (!match) return send(res, 404, { error: "404 Not Found" });
    const path = decodeURIComponent(match[1] ?? "");
    const projectId = projects.get(path);
    // A project the token's user may not see is 404, as GitLab answers it.
    if (projectId === undefined || levelOf(user) < 10)
      return send(res, 404, { message: "404 Project Not Found" });
    const rest = match[2] ?? "";
    if (req.method === "GET" && rest === "") {
      return send(res, 200, {
        id: projectId,
        path_with_namespace: path,
        name: path.split("/").at(-1),
        default_branch: "main",
        visibility: "private",
        http_url_to_repo: `${base}/${path}.git`,
        web_url: `${base}/${path}`,
      });
    }
    const member = /^\/members\/all\/(\d+)$/.exec(rest);
    if (req.method === "GET" && member) {
      const id = Number(member[1]);
      const who = [...userIds].find(([, uid]) => uid === id)?.[0];
      const level = who === undefined ? undefined : access.get(who);
      if (who === undefined || level === undefined) return send(res, 404, { message: "404 Not found" });
      return send(res, 200, { ...userJson(who), access_level: level, membership_state: "active" });
    }
    if (req.method === "POST" && rest === "/merge_requests") {
      if (levelOf(user) < 30) return send(res, 403, { message: "403 Forbidden" });
      const body = JSON.parse((await readBody(req)).toString()) as {
        source_branch?: string;
        target_branch?: string;
        title?: string;
        description?: string;
      };
      if (!body.source_branch || !body.target_branch || !body.title)
        return send(res, 400, { error: "source_branch, target_branch, title are missing" });
      if (!branchExists(reposRoot, path, body.source_branch))
        return send(res, 404, { message: "404 Source branch Not Found" });
      const open = mergeRequests.find((m) => m.source_branch === body.source_branch);
      if (open) {
        return send(res, 409, {
          message: [`Another open merge request already exists for this source branch: !${open.iid}`],
        });
      }
      const iid = mergeRequests.length + 1;
      const request: GitLabMergeRequest = {
        iid,
        title: body.title,
        description: body.description ?? "",
        source_branch: body.source_branch,
        target_branch: body.target_branch,
        web_url: `${base}/${path}/-/merge_requests/${iid}`,
      };
      mergeRequests.push(request);
      return send(res, 201, {
        id: nextId++,
        iid,
        project_id: projectId,
        state: "opened",
        title: request.title,
        description: request.description,
        source_branch: request.source_branch,
        target_branch: request.target_branch,
        author: userJson(user),
        web_url: request.web_url,
      });
    }
    const noteOn = /^\/(issues|merge_requests)\/(\d+)\/notes$/.exec(rest);
    if (req.method === "POST" && noteOn) {
      if (levelOf(user) < 20) return send(res, 403, { message: "403 Forbidden" });
      const iid = Number(noteOn[2]);
      const exists =
        noteOn[1] === "issues" ? issues.some((i) => i.iid === iid) : mergeRequests.some((m) => m.iid === iid);
      if (!exists) return send(res, 404, { message: "404 Not found" });
      const { body } = JSON.parse((await readBody(req)).toString()) as { body?: string };
      if (!body) return send(res, 400, { error: "body is missing" });
      const note = { id: nextId++, on: `${noteOn[1]}/${iid}`, author: user, body };
      notes.push(note);
      return send(res, 201, {
        id: note.id,
        body,
        author: userJson(user),
        system: false,
        noteable_type: noteOn[1] === "issues" ? "Issue" : "MergeRequest",
        noteable_iid: iid,
      });
    }
    return send(res, 404, { error: "404 Not Found" });
  });

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const projectJson = (project: string) => ({
    id: projects.get(project),
    name: project.split("/").at(-1),
    path_with_namespace: project,
    web_url: `${base}/${project}`,
    git_http_url: `${base}/${project}.git`,
    default_branch: "main",
  });
  const hookUser = (user: string) => ({ id: userId(user), name: user, username: user, avatar_url: null });
  const issueJson = (issue: GitLabIssue) => ({
    id: issue.iid + 100,
    iid: issue.iid,
    title: issue.title,
    description: issue.description,
    author_id: userId(issue.author),
    state: "opened",
  });

  return {
    url: base,
    gitUrl: (project) => `${base}/${project}.git`,
    createProject(project, files) {
      projects.set(project, projects.size + 1);
      return createBareRepo(root, reposRoot, project, files);
    },
    addToken(token, user) {
      tokens.set(token, user);
      userId(user);
    },
    setAccess(user, level) {
      userId(user);
      access.set(user, level);
    },
    addUser: (user) => void userId(user),
    createIssue(input) {
      const issue = { iid: issues.length + 1, labels: [], ...input };
      issues.push(issue);
      return issue;
    },
    issues,
    mergeRequests,
    notes,
    requests,
    async deliver(url, secretToken, event, payload, eventUuid = randomUUID()) {
      const response = await fetch(url, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "user-agent": "GitLab/17.2.0",
          "x-gitlab-event": event,
          "x-gitlab-instance": base,
          "x-gitlab-event-uuid": eventUuid,
          "x-gitlab-webhook-uuid": randomUUID(),
          ...(secretToken !== undefined ? { "x-gitlab-token": secretToken } : {}),
        },
        body: JSON.stringify(payload),
      });
      return { status: response.status, body: await response.text() };
    },
    payloads: {
      labeled(project, issue, label, user) {
        const previous = issue.labels.map((title) => ({ title }));
        issue.labels = [...issue.labels.filter((l) => l !== label), label];
        const current = issue.labels.map((title) => ({ title }));
        return {
          object_kind: "issue",
          event_type: "issue",
          user: hookUser(user),
          project: projectJson(project),
          object_attributes: {
            ...issueJson(issue),
            action: "update",
            labels: current,
            updated_at: new Date().toISOString(),
          },
          labels: current,
          changes: { labels: { previous, current } },
          repository: { name: project.split("/").at(-1), url: `${base}/${project}.git` },
        };
      },
      issueNote: (project, issue, body, user) => ({
        object_kind: "note",
        event_type: "note",
        user: hookUser(user),
        project_id: projects.get(project),
        project: projectJson(project),
        object_attributes: {
          id: nextId++,
          note: body,
          noteable_type: "Issue",
          noteable_id: issue.iid + 100,
          type: null,
          position: null,
          system: false,
          author_id: userId(user),
        },
        issue: issueJson(issue),
      }),
      mergeRequestNote: (project, request, body, user, onLine = false) => ({
        object_kind: "note",
        event_type: "note",
        user: hookUser(user),
        project_id: projects.get(project),
        project: projectJson(project),
        object_attributes: {
          id: nextId++,
          note: body,
          noteable_type: "MergeRequest",
          type: onLine ? "DiffNote" : null,
          position: onLine ? { new_path: "hello.py", new_line: 1, position_type: "text" } : null,
          system: false,
          author_id: userId(user),
        },
        merge_request: {
          iid: request.iid,
          title: request.title,
          source_branch: request.source_branch,
          target_branch: request.target_branch,
          state: "opened",
        },
      }),
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
