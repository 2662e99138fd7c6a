import { forwardRef, type ReactNode } from "react";
import type { AnswerOf } from "../../api.js";
import { formatDate } from "../../dates.js";
import "./bot-log.css";

/** One line of a bot's output as the page shows it: when, which stream, what. */
export type ShownLine = Pick<AnswerOf<"getBotLogs">["lines"][number], "ts" | "stream" | "text">;

/**
 * A bot's output in a framed pane, a line per row: its time (the whole date on hover), a
 * `stderr` tag on the error stream's lines (coloured too, but never by colour only), and the
 * text with every hit of `highlight` (any case) marked.
 */
export const BotLogLines = forwardRef<
  HTMLDivElement,
  {
    label: string;
    lines: ShownLine[];
    empty: string;
    highlight?: string;
    /** A pane that lines keep arriving in: one height whatever it holds (see bot-log.css). */
    live?: boolean;
  }
>(function BotLogLines(props, ref) {
  return (
    <div
      ref={ref}
      className={props.live ? "bot-log bot-log-live" : "bot-log"}
      role="log"
      aria-label={props.label}
      // biome-ignore lint/a11y/noNoninteractiveTabindex: the log scrolls, so it takes the keyboard
      tabIndex={0}
    >
      {props.lines.length === 0 ? <p className="meta bot-log-empty">{props.empty}</p> : null}
      {props.lines.map((line, i) => (
        // Lines only ever append (or drop from the top), and two may be the same: the index keys them.
        // biome-ignore lint/suspicious/noArrayIndexKey: see above
        <div key={i} className={`bot-log-line stream-${line.stream}`}>
          <time className="bot-log-time" dateTime={line.ts} title={formatDate(line.ts)}>
            {formatDate(line.ts).slice(11)}
          </time>
          {line.stream === "stderr" ? (
            <span className="bot-log-stream" title="standard error">
              stderr
            </span>
          ) : null}
          <span className="bot-log-text">{marked(line.text, props.highlight)}</span>
        </div>
      ))}
    </div>
  );
});

/** `text` with each hit of `needle` (any case) in a <mark>. */
function marked(text: string, needle: string | undefined): ReactNode {
  if (!needle) return text;
  const lower = text.toLowerCase();
  const want = needle.toLowerCase();
  // A letter whose lower case is longer (İ) would shift the offsets: such a line goes unmarked.
  if (lower.length !== text.length) return text;
  const parts: ReactNode[] = [];
  let from = 0;
  for (let at = lower.indexOf(want); at !== -1; at = lower.indexOf(want, from)) {
    if (at > from) parts.push(text.slice(from, at));
    parts.push(<mark key={at}>{text.slice(at, at + want.length)}</mark>);
    from = at + want.length;
  }
  if (parts.length === 0) return text;
  if (from < text.length) parts.push(text.slice(from));
  return parts;
}
