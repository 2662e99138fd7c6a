import { type FormEvent, useEffect, useState } from "react";
import { type AnswerOf, answer, api, asSubmit, type BodyOf } from "../../api.js";
import { navigate } from "../../router.js";
import { highlightLine, languageOf } from "./diff-highlight.js";
import { ErrorNote } from "./error-note.js";
import { PublishButtons } from "./publish-buttons.js";
import { commentsOn, type SentComment, SentComments } from "./sent-comments.js";

type RunDiff = AnswerOf<"getRunDiff">;
type AgentDiff = RunDiff["agents"][number];
type DiffFile = AgentDiff["files"][number];

/** Where a comment goes: a file, or one line of it as the change left it (of one agent's change). */
type Target = Omit<BodyOf<"sendReviewComment">, "text"> & { agent: string };

/**
 * Each agent's diff (side by side in a fan-out, tabs on a narrow screen): a file list with +/-
 * counts, then the hunks; a comment on a file or a line is sent as the next turn.
 */
export function DiffReview(props: { runId: string }) {
  const [diff, setDiff] = useState<RunDiff | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tab, setTab] = useState(0);
  const [target, setTarget] = useState<Target | null>(null);

  useEffect(() => {
    answer(api.GET("/api/runs/{id}/diff", { params: { path: { id: props.runId } } })).then(setDiff, setError);
  }, [props.runId]);

  if (error) return <ErrorNote error={error} />;
  if (!diff) return <p className="meta">Loading the diff…</p>;
  if (diff.agents.length === 0) return <p className="meta">No diff: the run kept none.</p>;
  return (
    <section className="section diff-review" aria-label="Diff">
      <h2>Changes</h2>
      {diff.repo && !diff.repo.pushed_by_task && diff.may_publish ? (
        <PublishButtons runId={props.runId} />
      ) : null}
      {diff.agents.length > 1 ? (
        <div className="diff-tabs" role="tablist">
          {diff.agents.map((agent, i) => (
            <button
              key={agent.agent}
              type="button"
              role="tab"
              aria-selected={i === tab}
              onClick={() => setTab(i)}
            >
              {agent.agent}
            </button>
          ))}
        </div>
      ) : null}
      <div className="columns diff-columns">
        {diff.agents.map((agent, i) => (
          <section
            key={agent.agent}
            className={`column${i === tab ? " diff-active" : ""}`}
            aria-label={`Diff of ${agent.agent}`}
          >
            <h3>{agent.agent}</h3>
            <AgentDiffView
              runId={props.runId}
              agent={agent}
              comments={diff.comments}
              target={target?.agent === agent.agent ? target : null}
              onTarget={setTarget}
            />
          </section>
        ))}
      </div>
    </section>
  );
}

function AgentDiffView(props: {
  runId: string;
  agent: AgentDiff;
  comments: SentComment[];
  target: Target | null;
  onTarget: (target: Target | null) => void;
}) {
  const { agent } = props;
  if (agent.files.length === 0 && agent.omitted_files === 0)
    return <p className="meta">The agent changed no file.</p>;
  return (
    <>
      <ul className="diff-files" aria-label="Files">
        {agent.files.map((file) => (
          <li key={file.path}>
            <a href={`#${anchorOf(agent.agent, file.path)}`} onClick={(e) => jump(e, agent.agent, file.path)}>
              {file.path}
            </a>{" "}
            <span className="diff-add">+{file.additions}</span>{" "}
            <span className="diff-del">-{file.deletions}</span>
          </li>
        ))}
      </ul>
      {agent.note ? <p className="error">{agent.note}</p> : null}
      {agent.files.map((file) => (
        <FileView key={file.path} {...props} file={file} />
      ))}
    </>
  );
}

function anchorOf(agent: string, path: string): string {
  return `diff-${agent}-${path}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** The hash router owns `#`: scroll to the file instead of following the link. */
function jump(event: React.MouseEvent, agent: string, path: string) {
  event.preventDefault();
  document.getElementById(anchorOf(agent, path))?.scrollIntoView();
}

function FileView(props: {
  runId: string;
  agent: AgentDiff;
  comments: SentComment[];
  file: DiffFile;
  target: Target | null;
  onTarget: (target: Target | null) => void;
}) {
  const { file, agent, target } = props;
  const here = target?.path === file.path;
  const language = languageOf(file.path);
  const sent = commentsOn(props.comments, agent.agent, file.path);
  const shownLines = new Set(file.hunks.flatMap((h) => h.lines.map((l) => l.new_line)));
  // A comment on the file, or on a line the diff does not show, sits under the file's name.
  const onFile = sent.filter((c) => c.line === null || !shownLines.has(c.line));
  return (
    <section
      className="diff-file-view"
      id={anchorOf(agent.agent, file.path)}
      aria-label={`File ${file.path}`}
    >
      <div className="diff-file-head">
        <strong>{file.path}</strong> <span className="meta">{file.status}</span>
        {file.old_path ? <span className="meta"> from {file.old_path}</span> : null}{" "}
        <button
          type="button"
          className="link"
          onClick={() => props.onTarget({ agent: agent.agent, path: file.path })}
        >
          Comment on file
        </button>
      </div>
      {here && target.line === undefined ? (
        <CommentForm runId={props.runId} target={target} onCancel={() => props.onTarget(null)} />
      ) : null}
      <SentComments comments={onFile} />
      {file.binary ? <p className="meta">Binary file: not shown.</p> : null}
      <table className="diff-table">
        <tbody>
          {file.hunks.flatMap((hunk) => [
            <tr key={hunk.header} className="diff-hunk">
              <td colSpan={3}>{hunk.header}</td>
            </tr>,
            ...hunk.lines.flatMap((line) => {
              const key = `${hunk.header}|${line.old_line}|${line.new_line}`;
              const row = (
                <tr key={key} className={`diff-line diff-line-${line.kind}`}>
                  <td className="diff-num">{line.old_line ?? ""}</td>
                  <td className="diff-num">
                    {line.new_line !== null ? (
                      <button
                        type="button"
                        className="link"
                        aria-label={`Comment on line ${line.new_line} of ${file.path}`}
                        onClick={() =>
                          props.onTarget({
                            agent: agent.agent,
                            path: file.path,
                            line: line.new_line ?? undefined,
                          })
                        }
                      >
                        {line.new_line}
                      </button>
                    ) : null}
                  </td>
                  <td className="diff-code">
                    <code className={language ? `language-${language}` : undefined}>
                      {line.kind === "add" ? "+" : line.kind === "del" ? "-" : " "}
                      {highlightLine(line.text, language)}
                    </code>
                  </td>
                </tr>
              );
              const onLine = sent.filter((c) => c.line !== null && c.line === line.new_line);
              const sentRow =
                onLine.length > 0 ? (
                  <tr key={`${key}|sent`}>
                    <td colSpan={3}>
                      <SentComments comments={onLine} />
                    </td>
                  </tr>
                ) : null;
              const rows = sentRow ? [row, sentRow] : [row];
              if (!here || target.line === undefined || target.line !== line.new_line) return rows;
              return [
                ...rows,
                <tr key={`${key}|comment`}>
                  <td colSpan={3}>
                    <CommentForm runId={props.runId} target={target} onCancel={() => props.onTarget(null)} />
                  </td>
                </tr>,
              ];
            }),
          ])}
        </tbody>
      </table>
    </section>
  );
}

/** A review comment: sent as the next turn, which opens at once. */
function CommentForm(props: { runId: string; target: Target; onCancel: () => void }) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const where =
    props.target.line === undefined ? props.target.path : `${props.target.path}:${props.target.line}`;
  const send = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const next = await answer(
        api.POST("/api/runs/{id}/review-comments", {
          params: { path: { id: props.runId } },
          body: {
            agent: props.target.agent,
            path: props.target.path,
            ...(props.target.line !== undefined ? { line: props.target.line } : {}),
            text,
          },
          ...asSubmit,
        }),
      );
      navigate(`/agents/${encodeURIComponent(next.run_id)}`);
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  return (
    <form className="form-grid diff-comment" onSubmit={send} aria-label={`Comment on ${where}`}>
      <label className="wide">
        Comment on {where} (sent to the agent as the next turn)
        <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} required />
      </label>
      <div className="wide actions">
        <button type="submit" disabled={busy}>
          Send comment
        </button>
        <button type="button" onClick={props.onCancel}>
          Cancel
        </button>
        <ErrorNote error={error} />
      </div>
    </form>
  );
}
