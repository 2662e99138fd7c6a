import { type CollaboratorPermission, GitHubShapedRepo, issueCommentIntent } from "./github-shaped.js";
import { commentInstruction, type ForgeClient, type ForgeIntent, type ForgePermission } from "./types.js";

/** GitHub's REST API version runyard speaks (the `X-GitHub-Api-Version` header). */
const apiVersion = "2022-11-28";

/**
 * A GitHub repo through its REST API (api.github.com or a GitHub Enterprise server's /api/v3),
 * with a token that may read the repo's collaborators, open pull requests and comment
 * (a fine-grained token with Contents, Pull requests and Issues read-write, Metadata read).
 */
export class GitHubClient extends GitHubShapedRepo implements ForgeClient {
  constructor(apiUrl: string, /** `OWNER/NAME`. */ repo: string, token: string) {
    super(
      {
        name: "GitHub",
        baseUrl: `${apiUrl.replace(/\/$/, "")}/repos/${repo}`,
        auth: {
          accept: "application/vnd.github+json",
          authorization: `Bearer ${token}`,
          "x-github-api-version": apiVersion,
        },
        permissionHint:
          "The token may lack a permission: it needs Contents, Pull requests and Issues read-write, and Metadata read, on this repo.",
      },
      repo,
    );
  }

  protected permissionOf(answer: CollaboratorPermission): ForgePermission {
    const role = answer.role_name ?? answer.permission ?? "none";
    return (["admin", "maintain", "write", "triage", "read"] as const).find((p) => p === role) ?? "none";
  }
}

interface GitHubUser {
  login?: string;
  type?: string;
}

/**
 * What a GitHub delivery asks (the `X-GitHub-Event` and its JSON body): an issue labelled with
 * `label` or commented `/runyard ...` starts a task; a `/runyard` comment or a review comment on
 * a pull request continues its task. Comments by bots (runyard's own answers among them) are
 * ignored, so runyard never answers itself.
 */
export function githubIntent(event: string, payload: unknown, label: string): ForgeIntent {
  const body = (payload ?? {}) as {
    action?: string;
    label?: { name?: string };
    issue?: { number?: number; title?: string; body?: string | null; pull_request?: unknown };
    pull_request?: { number?: number };
    comment?: { body?: string; user?: GitHubUser };
    sender?: GitHubUser;
  };
  const sender = body.sender?.login ?? "";
  if (!sender) return { kind: "ignore", why: "the delivery names no sender" };
  if (body.sender?.type === "Bot" || body.comment?.user?.type === "Bot")
    return { kind: "ignore", why: "a bot's action" };
  if (event === "issues") {
    if (body.action !== "labeled") return { kind: "ignore", why: `issues ${body.action ?? "?"}` };
    if (body.label?.name !== label)
      return { kind: "ignore", why: `another label (${body.label?.name ?? "?"})` };
    const issue = body.issue;
    if (typeof issue?.number !== "number") return { kind: "ignore", why: "no issue number" };
    if (issue.pull_request) return { kind: "ignore", why: "a pull request was labelled, not an issue" };
    return { kind: "issue", number: issue.number, title: issue.title ?? "", body: issue.body ?? "", sender };
  }
  if (event === "issue_comment") {
    if (body.action !== "created") return { kind: "ignore", why: `issue_comment ${body.action ?? "?"}` };
    return issueCommentIntent(
      body.comment?.body ?? "",
      body.issue,
      Boolean(body.issue?.pull_request),
      sender,
    );
  }
  if (event === "pull_request_review_comment") {
    if (body.action !== "created") return { kind: "ignore", why: `review comment ${body.action ?? "?"}` };
    const number = body.pull_request?.number;
    const text = (body.comment?.body ?? "").trim();
    if (typeof number !== "number" || !text)
      return { kind: "ignore", why: "no pull request or empty comment" };
    return { kind: "pull", number, instruction: commentInstruction(text) ?? text, sender };
  }
  return { kind: "ignore", why: `event ${event || "?"} is not one runyard acts on` };
}
