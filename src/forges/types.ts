/**
 * A code forge's side of issue tasks (docs/forges.md): what its webhooks mean, and runyard's calls
 * back. One file per forge; the server's forge routes and reporter use only this interface.
 */

/** What a delivery asks of runyard, once its signature matched. */
export type ForgeIntent =
  /** Start a task on an issue: labelled, or commented `/runyard ...`. */
  | {
      kind: "issue";
      number: number;
      title: string;
      body: string;
      /** The text after `/runyard` in a comment; plain text, never options. */
      instruction?: string;
      /** Who asked: their permission on the repo is checked before anything starts. */
      sender: string;
      /**
       * The delivery does not say the label was just put on (Gitea's `label_updated` names the
       * labels the issue has now): it starts a task only if the issue has none yet.
       */
      unlessStarted?: boolean;
    }
  /** Continue the task of a pull request runyard opened: a review comment or `/runyard ...` on it. */
  | { kind: "pull"; number: number; instruction: string; sender: string }
  /** Nothing for runyard (another label, a comment without the command, a bot's own comment). */
  | { kind: "ignore"; why: string };

/** A user's permission on the repo, as the forge reports it. */
export type ForgePermission = "admin" | "maintain" | "write" | "triage" | "read" | "none";

/** Which thread a comment goes to: an issue's or a pull request's (GitLab numbers them apart). */
export type CommentTarget = { issue: number } | { pull: number };

/** How a forge names its pull requests, for the comments runyard writes there. */
export interface ForgeTerms {
  /** "pull request" or "merge request". */
  pullRequest: string;
  /** How a comment links pull request `n`: `#n` (GitHub, Gitea) or `!n` (GitLab). */
  pullRef(n: number): string;
}

export interface ForgeClient {
  readonly terms: ForgeTerms;
  /** The repo's clone URL (https) and default branch. */
  repository(): Promise<{ cloneUrl: string; defaultBranch: string }>;
  permission(user: string): Promise<ForgePermission>;
  /** Opens a pull request; answers its number and web URL. */
  openPullRequest(input: {
    head: string;
    base: string;
    title: string;
    body: string;
  }): Promise<{ number: number; url: string }>;
  /** Comments on an issue or pull request. */
  comment(target: CommentTarget, body: string): Promise<void>;
}

/** The number of the issue or pull request a comment goes to. */
export function targetNumber(target: CommentTarget): number {
  return "issue" in target ? target.issue : target.pull;
}

/** Who may start work: those who may push to the repo. */
export function mayStartWork(permission: ForgePermission): boolean {
  return permission === "admin" || permission === "maintain" || permission === "write";
}

/** The command a comment starts with; the rest of the comment is the instruction, as text. */
export const commentCommand = "/runyard";

/**
 * The rest of a comment that starts with `/runyard` (else undefined), as text: nothing in it is an
 * option, `/runyard --push x` asks the agent for "--push x".
 */
export function commentInstruction(body: string): string | undefined {
  const trimmed = body.trimStart();
  if (!trimmed.startsWith(commentCommand)) return undefined;
  const rest = trimmed.slice(commentCommand.length);
  if (rest !== "" && !/^\s/.test(rest)) return undefined; // `/runyardx` is another word
  return rest.trim();
}
