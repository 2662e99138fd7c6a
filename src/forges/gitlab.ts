import { RunyardError } from "../core/errors.js";
import { callForgeApi, type ForgeApi, ForgeApiError } from "./forge-api.js";
import {
  type CommentTarget,
  commentInstruction,
  type ForgeClient,
  type ForgeIntent,
  type ForgePermission,
} from "./types.js";

/**
 * A GitLab project through its REST API (`https://gitlab.com/api/v4` or self-managed), with an `api`-scope
 * token of a Developer or more (a user, or a project access token's bot): it reads members, opens merge
 * requests, comments and pushes the tasks' branches.
 */
export class GitLabClient implements ForgeClient {
  readonly terms = { pullRequest: "merge request", pullRef: (n: number) => `!${n}` };
  private readonly api: ForgeApi;
  private readonly project: string;

  constructor(
    apiUrl: string,
    /** The project's full path, `GROUP/NAME` (groups may nest). */
    private readonly repo: string,
    token: string,
  ) {
    this.api = {
      name: "GitLab",
      baseUrl: apiUrl,
      auth: { "private-token": token },
      permissionHint:
        "The token may lack a permission: it needs the `api` scope and the Developer role (or more) on this project.",
    };
    this.project = `/projects/${encodeURIComponent(repo)}`;
  }

  async repository(): Promise<{ cloneUrl: string; defaultBranch: string }> {
    const project = (await this.call("GET", "")) as { http_url_to_repo?: string; default_branch?: string };
    if (!project.http_url_to_repo) throw this.unexpected("the project has no http_url_to_repo");
    return { cloneUrl: project.http_url_to_repo, defaultBranch: project.default_branch ?? "main" };
  }

  /**
   * The user's access to the project, inherited from its groups too (`members/all`): Owner (50)
   * is admin, Maintainer (40) maintain, Developer (30) write, Reporter and below read.
   */
  async permission(user: string): Promise<ForgePermission> {
    const users = (await callForgeApi(
      this.api,
      "GET",
      `/users?username=${encodeURIComponent(user)}`,
    )) as Array<{ id?: number; username?: string }>;
    const id = Array.isArray(users) ? users.find((u) => u.username === user)?.id : undefined;
    if (typeof id !== "number") return "none";
    try {
      const member = (await this.call("GET", `/members/all/${id}`)) as {
        access_level?: number;
        state?: string;
      };
      if (member.state !== undefined && member.state !== "active") return "none";
      return gitlabPermission(member.access_level ?? 0);
    } catch (error) {
      // Not a member: GitLab answers 404.
      if (error instanceof ForgeApiError && error.forgeStatus === 404) return "none";
      throw error;
    }
  }

  async openPullRequest(input: { head: string; base: string; title: string; body: string }) {
    const request = (await this.call("POST", "/merge_requests", {
      source_branch: input.head,
      target_branch: input.base,
      title: input.title,
      description: input.body,
    })) as { iid?: number; web_url?: string };
    if (typeof request.iid !== "number") throw this.unexpected("the new merge request has no iid");
    return { number: request.iid, url: request.web_url ?? "" };
  }

  async comment(target: CommentTarget, body: string): Promise<void> {
    const thread = "issue" in target ? `/issues/${target.issue}` : `/merge_requests/${target.pull}`;
    await this.call("POST", `${thread}/notes`, { body });
  }

  private call(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    return callForgeApi(this.api, method, `${this.project}${path}`, body);
  }

  private unexpected(what: string): RunyardError {
    return new RunyardError("FORGE_FAILED", `GitLab answered ${this.repo} unexpectedly: ${what}`);
  }
}

/** GitLab's access levels as runyard's permissions. */
export function gitlabPermission(accessLevel: number): ForgePermission {
  if (accessLevel >= 50) return "admin";
  if (accessLevel >= 40) return "maintain";
  if (accessLevel >= 30) return "write";
  if (accessLevel >= 10) return "read";
  return "none";
}

interface GitLabUser {
  username?: string;
}
interface GitLabLabel {
  title?: string;
}

/**
 * What a GitLab delivery (`X-Gitlab-Event`, JSON body) asks: an issue gaining `label` (an "Issue Hook" whose
 * `changes.labels` add it, or opened with it) or a `/runyard ...` note on an issue starts a task; a
 * `/runyard ...` or diff-line note on a merge request runyard opened continues it. System notes and
 * runyard's own comments (never `/runyard`, never on a line) are ignored.
 */
export function gitlabIntent(event: string, payload: unknown, label: string): ForgeIntent {
  const body = (payload ?? {}) as {
    object_kind?: string;
    user?: GitLabUser;
    object_attributes?: {
      iid?: number;
      title?: string;
      description?: string | null;
      action?: string;
      note?: string;
      noteable_type?: string;
      type?: string | null;
      position?: unknown;
      system?: boolean;
    };
    labels?: GitLabLabel[];
    changes?: { labels?: { previous?: GitLabLabel[]; current?: GitLabLabel[] } };
    issue?: { iid?: number; title?: string; description?: string | null };
    merge_request?: { iid?: number };
  };
  const sender = body.user?.username ?? "";
  if (!sender) return { kind: "ignore", why: "the delivery names no user" };
  const attributes = body.object_attributes ?? {};
  if (event === "Issue Hook") {
    const has = (labels: GitLabLabel[] | undefined) => (labels ?? []).some((l) => l.title === label);
    const changed = body.changes?.labels;
    const labelled =
      changed !== undefined
        ? has(changed.current) && !has(changed.previous)
        : attributes.action === "open" && has(body.labels);
    if (!labelled)
      return { kind: "ignore", why: `issue ${attributes.action ?? "?"} without the label ${label} put on` };
    if (typeof attributes.iid !== "number") return { kind: "ignore", why: "no issue iid" };
    return {
      kind: "issue",
      number: attributes.iid,
      title: attributes.title ?? "",
      body: attributes.description ?? "",
      sender,
    };
  }
  if (event === "Note Hook") {
    if (attributes.system) return { kind: "ignore", why: "a system note" };
    const text = (attributes.note ?? "").trim();
    const instruction = commentInstruction(text);
    if (attributes.noteable_type === "MergeRequest") {
      const number = body.merge_request?.iid;
      if (typeof number !== "number") return { kind: "ignore", why: "no merge request iid" };
      const onALine = attributes.type === "DiffNote" || (attributes.position ?? null) !== null;
      if (onALine && text) return { kind: "pull", number, instruction: instruction || text, sender };
      if (instruction === undefined) return { kind: "ignore", why: "the note does not start with /runyard" };
      if (!instruction) return { kind: "ignore", why: "/runyard on a merge request needs an instruction" };
      return { kind: "pull", number, instruction, sender };
    }
    if (attributes.noteable_type === "Issue") {
      if (instruction === undefined) return { kind: "ignore", why: "the note does not start with /runyard" };
      const issue = body.issue;
      if (typeof issue?.iid !== "number") return { kind: "ignore", why: "no issue iid" };
      return {
        kind: "issue",
        number: issue.iid,
        title: issue.title ?? "",
        body: issue.description ?? "",
        ...(instruction ? { instruction } : {}),
        sender,
      };
    }
    return { kind: "ignore", why: `a note on a ${attributes.noteable_type ?? "?"}` };
  }
  return { kind: "ignore", why: `event ${event || "?"} is not one runyard acts on` };
}
