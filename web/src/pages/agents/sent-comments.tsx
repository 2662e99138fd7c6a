import type { AnswerOf } from "../../api.js";

/** A review comment sent on a diff, as the server keeps it: in the turn it started. */
export type SentComment = AnswerOf<"getRunDiff">["comments"][number];

/** The comments sent on one file of one agent's change (those naming no agent are on every agent's). */
export function commentsOn(comments: SentComment[], agent: string, path: string): SentComment[] {
  return comments.filter((c) => (c.agent === null || c.agent === agent) && c.path === path);
}

/** Sent comments where they were written: under their line, or under the file's name. */
export function SentComments(props: { comments: SentComment[] }) {
  if (props.comments.length === 0) return null;
  return (
    <ul className="sent-comments" aria-label="Sent comments">
      {props.comments.map((comment) => (
        <li key={comment.run_id}>
          <span className="meta">
            {comment.line === null ? `Comment on ${comment.path}` : `Comment on line ${comment.line}`}
          </span>
          <div className="sent-comment-text">{comment.text}</div>
          <a href={`#/agents/${encodeURIComponent(comment.run_id)}`}>Started turn {comment.run_id}</a>{" "}
          <span className={`status-${comment.status}`}>{comment.status}</span>
        </li>
      ))}
    </ul>
  );
}
