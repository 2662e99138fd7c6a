import { useEffect, useState } from "react";
import type { AgentSummary } from "../../../../src/core/events.js";
import { answer, api } from "../../api.js";

/** An agent's result: branch, commit, push, diff stats, tests, and the raw diff behind a toggle. */
export function AgentResult(props: { runId: string; summary: AgentSummary }) {
  const s = props.summary;
  const diffName = s.artifacts.find((name) => name.endsWith(".diff") || name.endsWith(".patch"));
  return (
    <section className="section" aria-label={`Result of ${s.agent}`}>
      <h4>
        Result: <span className={`status-${s.status}`}>{s.status}</span>
      </h4>
      {s.error ? (
        <p className="error">
          {s.error.code}: {s.error.message}
          {s.error.hint ? <span className="hint">{s.error.hint}</span> : null}
        </p>
      ) : null}
      <ul className="stats">
        {s.branch ? <li>branch {s.branch}</li> : null}
        {s.commit ? <li>commit {s.commit.slice(0, 12)}</li> : null}
        <li>{s.pushed ? "pushed" : "not pushed"}</li>
        {s.diff_stats ? (
          <li>
            {s.diff_stats.files} files, +{s.diff_stats.insertions} −{s.diff_stats.deletions}
          </li>
        ) : null}
        {s.tests ? (
          <li>
            tests <span className={`status-${s.tests.status}`}>{s.tests.status}</span>
            {s.tests.exit_code !== null ? ` (exit ${s.tests.exit_code})` : ""}
          </li>
        ) : null}
        <li>{(s.duration_ms / 1000).toFixed(1)} s</li>
      </ul>
      {diffName ? <Diff runId={props.runId} name={diffName} /> : null}
      {s.artifacts.length > 0 ? (
        <p className="meta">
          Artifacts:{" "}
          {s.artifacts.map((name) => (
            <ArtifactLink key={name} runId={props.runId} name={name} />
          ))}
        </p>
      ) : null}
    </section>
  );
}

function artifactText(runId: string, name: string): Promise<string> {
  return answer(
    api.GET("/api/runs/{id}/artifacts/{name}", { params: { path: { id: runId, name } }, parseAs: "text" }),
  );
}

/** A download needs the Bearer header, so the link fetches the artifact and saves it. */
function ArtifactLink(props: { runId: string; name: string }) {
  const save = async () => {
    const text = await artifactText(props.runId, props.name);
    const url = URL.createObjectURL(new Blob([text]));
    const link = document.createElement("a");
    link.href = url;
    link.download = props.name;
    link.click();
    URL.revokeObjectURL(url);
  };
  return (
    <button type="button" className="link" onClick={save}>
      {props.name}
    </button>
  );
}

/**
 * The raw unified diff, closed: "Changes" below is the diff to read and comment on; this is the
 * artifact as text (bounded), fetched when opened.
 */
function Diff(props: { runId: string; name: string }) {
  const [open, setOpen] = useState(false);
  const [text, setText] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (open) artifactText(props.runId, props.name).then(setText, (caught) => setError(String(caught)));
  }, [open, props.runId, props.name]);
  const lines = text === null ? [] : text.split("\n");
  return (
    <details onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Raw diff ({props.name})</summary>
      {error ? <p className="error">{error}</p> : null}
      {open && text === null && !error ? <p className="loading">Loading…</p> : null}
      {text !== null ? (
        <pre className="diff">
          {text === "" ? "(no changes)" : null}
          {lines.slice(0, maxDiffLines).map((line, index) => (
            // biome-ignore lint/suspicious/noArrayIndexKey: the lines of one fixed text
            <span key={index} className={diffClass(line)}>
              {line}
              {"\n"}
            </span>
          ))}
          {lines.length > maxDiffLines
            ? `… ${lines.length - maxDiffLines} more lines: download the artifact`
            : null}
        </pre>
      ) : null}
    </details>
  );
}

/** A diff longer than this shows its start: the page stays quick, the artifact has it all. */
const maxDiffLines = 5000;

function diffClass(line: string): string | undefined {
  if (line.startsWith("+++") || line.startsWith("---")) return "diff-file";
  if (line.startsWith("+")) return "diff-add";
  if (line.startsWith("-")) return "diff-del";
  if (line.startsWith("@@")) return "diff-hunk";
  return undefined;
}
