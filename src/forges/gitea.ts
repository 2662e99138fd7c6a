import { type CollaboratorPermission, GitHubShapedRepo, issueCommentIntent } from "./github-shaped.js";
import { commentInstruction, type ForgeClient, type ForgeIntent, type ForgePermission } from "./types.js";

/**
 * A Gitea or Forgejo repo (they speak one API) through its REST API (`https://HOST/api/v1`),
 * with a token of a user who is an admin collaborator of the repo (only a repo admin may ask
 * another user's permission) with the scopes `write:repository` and `write:issue`.
 */
export class GiteaClient extends GitHubShapedRepo implements ForgeClient {
  constructor(apiUrl: string, /** `OWNER/NAME`. */ repo: string, token: string) {
    const [owner = "", name = ""] = repo.split("/");
    super(
      {
        name: "Gitea",
        baseUrl: apiUrl,
        auth: { authorization: `token ${token}` },
        permissionHint:
          "The token may lack a permission: it needs the scopes write:repository and write:issue, and its user must be an admin collaborator of the repo (only a repo admin may read others' permissions).",
      },
      repo,
      `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`,
    );
  }

  protected permissionOf(answer: CollaboratorPermission): ForgePermission {
    const permission = answer.permission === "owner" ? "admin" : (answer.permission ?? "none");
    return (["admin", "write", "read"] as const).find((p) => p === permission) ?? "none";
  }
}

interface GiteaUser {
  login?: string;
}

/**
 * What a Gitea or Forgejo delivery asks (its `X-Gitea-Event` and JSON body): an issue labelled
 * with `label` (`issues` with action `label_updated`, which names the labels the issue has now,
 * so it starts a task only if the issue has none yet; or `labeled`) or commented `/runyard ...`
 * starts a task; a `/runyard ...` comment on a pull request runyard opened, or a review comment
 * on it (`pull_request_comment`), continues the task. Runyard's own comments never start with
 * `/runyard`, so it never answers itself.
 */
export function giteaIntent(event: string, payload: unknown, label: string): ForgeIntent {
  const body = (payload ?? {}) as {
    action?: string;
    label?: { name?: string };
    number?: number;
    issue?: {
      number?: number;
      title?: string;
      body?: string | null;
      labels?: Array<{ name?: string }> | null;
      pull_request?: unknown;
    };
    pull_request?: { number?: number };
    comment?: { body?: string; user?: GiteaUser };
    review?: { type?: string; content?: string };
    is_pull?: boolean;
    sender?: GiteaUser;
  };
  const sender = body.sender?.login ?? "";
  if (!sender) return { kind: "ignore", why: "the delivery names no sender" };
  const issue = body.issue;
  if (event === "issues") {
    const asIssue = (unlessStarted: boolean): ForgeIntent =>
      typeof issue?.number !== "number"
        ? { kind: "ignore", why: "no issue number" }
        : issue.pull_request
          ? { kind: "ignore", why: "a pull request was labelled, not an issue" }
          : {
              kind: "issue",
              number: issue.number,
              title: issue.title ?? "",
              body: issue.body ?? "",
              sender,
              ...(unlessStarted ? { unlessStarted } : {}),
            };
    if (body.action === "labeled") {
      if (body.label?.name !== label)
        return { kind: "ignore", why: `another label (${body.label?.name ?? "?"})` };
      return asIssue(false);
    }
    if (body.action === "label_updated") {
      if (!(issue?.labels ?? []).some((l) => l.name === label))
        return { kind: "ignore", why: `the issue's labels do not include ${label}` };
      return asIssue(true);
    }
    return { kind: "ignore", why: `issues ${body.action ?? "?"}` };
  }
  if (event === "issue_comment" || (event === "pull_request_comment" && body.comment)) {
    if (body.action !== "created") return { kind: "ignore", why: `${event} ${body.action ?? "?"}` };
    const onPull = Boolean(body.is_pull || issue?.pull_request) || event === "pull_request_comment";
    return issueCommentIntent(body.comment?.body ?? "", issue, onPull, sender);
  }
  if (event === "pull_request_comment") {
    // A review with a comment: Gitea sends the pull request and the review's text.
    const number = body.pull_request?.number ?? body.number;
    const text = (body.review?.content ?? "").trim();
    if (typeof number !== "number" || !text)
      return { kind: "ignore", why: "no pull request or empty review" };
    return { kind: "pull", number, instruction: commentInstruction(text) || text, sender };
  }
  return { kind: "ignore", why: `event ${event || "?"} is not one runyard acts on` };
}
