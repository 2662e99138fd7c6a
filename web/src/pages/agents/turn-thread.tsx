import type { Schema } from "../../api.js";

type AgentTurn = NonNullable<Schema<"Run">["agent_turn"]>;

/** A prompt longer than this is folded: its first lines show, the rest on demand. */
const foldedLines = 8;
const foldedChars = 600;

/** The page's heading for a turn: its prompt on one line, cut short. */
export function turnHeading(prompt: string): string {
  const line = prompt.replace(/\s+/g, " ").trim();
  return line.length > 72 ? `${line.slice(0, 71)}…` : line;
}

function href(runId: string): string {
  return `#/agents/${encodeURIComponent(runId)}`;
}

/**
 * Where the turn sits in its task: the turn before (the one it continues) and the turns after
 * (a follow-up message or review comment sent from it), each linked.
 */
export function TurnLinks(props: { turn: AgentTurn }) {
  const { turn } = props;
  const after = turn.followed_by ?? [];
  if (turn.follows === null && after.length === 0) return null;
  return (
    <nav className="turn-links" aria-label="Turns">
      <span>Turn {turn.turn}</span>
      {turn.follows !== null ? <a href={href(turn.follows)}>← Turn {turn.turn - 1}</a> : null}
      {after.map((next) => (
        <a key={next.run_id} href={href(next.run_id)}>
          Turn {turn.turn + 1} <span className={`status-${next.status}`}>{next.status}</span> →
        </a>
      ))}
    </nav>
  );
}

/** The turn's prompt (the task, a follow-up message or a review comment) in full; folded when long. */
export function TurnPrompt(props: { turn: AgentTurn }) {
  const prompt = props.turn.prompt ?? "";
  const label = props.turn.follows === null ? "Prompt" : "Message";
  const long = prompt.length > foldedChars || prompt.split("\n").length > foldedLines;
  if (!long)
    return (
      <section className="turn-prompt" aria-label={label}>
        <h2 className="meta">{label}</h2>
        <pre>{prompt}</pre>
      </section>
    );
  return (
    <section className="turn-prompt" aria-label={label}>
      <details>
        <summary>
          {label} ({prompt.split("\n").length} lines) <span className="meta">{turnHeading(prompt)}</span>
        </summary>
        <pre>{prompt}</pre>
      </details>
    </section>
  );
}
