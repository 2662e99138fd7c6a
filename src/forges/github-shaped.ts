import { RunyardError } from "../core/errors.js";
import { callForgeApi, type ForgeApi, ForgeApiError } from "./forge-api.js";
import {
  type CommentTarget,
  commentInstruction,
  type ForgeIntent,
  type ForgePermission,
  targetNumber,
} from "./types.js";

/** What a forge says of a collaborator's access to a repo (GitHub adds `role_name`). */
export interface CollaboratorPermission {
  permission?: string;
  role_name?: string;
}

/**
 * A repo on a forge whose REST API has GitHub's shape (GitHub, Gitea and Forgejo): the repo's
 * `clone_url` and `default_branch`, `POST /pulls`, a collaborator's permission, and a pull
 * request's comments as its issue's (issues and pull requests are numbered as one).
 */
export abstract class GitHubShapedRepo {
  readonly terms = { pullRequest: "pull request", pullRef: (n: number) => `#${n}` };

  protected constructor(
    private readonly api: ForgeApi,
    /** `OWNER/NAME`. */
    private readonly repo: string,
    /** Put before each call's path: the repo's own path, unless `api.baseUrl` ends with it. */
    private readonly repoPath = "",
  ) {}

  /** The forge's answer of a collaborator's permission, as runyard's permission. */
  protected abstract permissionOf(answer: CollaboratorPermission): ForgePermission;

  async repository(): Promise<{ cloneUrl: string; defaultBranch: string }> {
    const repo = (await this.call("GET", "")) as { clone_url?: string; default_branch?: string };
    if (!repo.clone_url) throw this.unexpected("the repository has no clone_url");
    return { cloneUrl: repo.clone_url, defaultBranch: repo.default_branch ?? "main" };
  }

  async permission(user: string): Promise<ForgePermission> {
    try {
      const path = `/collaborators/${encodeURIComponent(user)}/permission`;
      return this.permissionOf((await this.call("GET", path)) as CollaboratorPermission);
    } catch (error) {
      // Not a collaborator of a private repo (GitHub), no such user (Gitea): 404.
      if (error instanceof ForgeApiError && error.forgeStatus === 404) return "none";
      throw error;
    }
  }

  async openPullRequest(input: { head: string; base: string; title: string; body: string }) {
    const pull = (await this.call("POST", "/pulls", input)) as { number?: number; html_url?: string };
    if (typeof pull.number !== "number") throw this.unexpected("the new pull request has no number");
    return { number: pull.number, url: pull.html_url ?? "" };
  }

  async comment(target: CommentTarget, body: string): Promise<void> {
    await this.call("POST", `/issues/${targetNumber(target)}/comments`, { body });
  }

  private call(method: "GET" | "POST", path: string, body?: unknown): Promise<unknown> {
    return callForgeApi(this.api, method, `${this.repoPath}${path}`, body);
  }

  private unexpected(what: string): RunyardError {
    return new RunyardError("FORGE_FAILED", `${this.api.name} answered ${this.repo} unexpectedly: ${what}`);
  }
}

/**
 * What a comment on an issue asks, as GitHub and Gitea deliver it (a pull request's comments are
 * its issue's): `/runyard ...` on an issue starts a task, on a pull request it continues its task.
 */
export function issueCommentIntent(
  comment: string,
  issue: { number?: number; title?: string; body?: string | null } | undefined,
  onPull: boolean,
  sender: string,
): ForgeIntent {
  const instruction = commentInstruction(comment);
  if (instruction === undefined) return { kind: "ignore", why: "the comment does not start with /runyard" };
  if (typeof issue?.number !== "number") return { kind: "ignore", why: "no issue number" };
  if (onPull) {
    if (!instruction) return { kind: "ignore", why: "/runyard on a pull request needs an instruction" };
    return { kind: "pull", number: issue.number, instruction, sender };
  }
  return {
    kind: "issue",
    number: issue.number,
    title: issue.title ?? "",
    body: issue.body ?? "",
    ...(instruction ? { instruction } : {}),
    sender,
  };
}
