import { useState } from "react";
import { answer, api } from "../../api.js";
import { formatDate } from "../../dates.js";
import { ErrorNote } from "../agents/error-note.js";
import { versionChanges } from "./bot-version-change.js";
import { usePoll } from "./use-poll.js";

/**
 * A bot's versions, newest first, each with what it changed from the one before (names, never
 * values), and the rollback to the one before the current one.
 */
export function BotVersions(props: { name: string; current: number; live: boolean; onDone: () => void }) {
  const params = { path: { name: props.name } };
  const { data, error, reload } = usePoll(
    () => answer(api.GET("/api/bots/{name}/versions", { params })),
    5000,
  );
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const canRollBack =
    props.live && (data?.versions ?? []).some((v) => v.version < props.current && v.state === "replaced");
  const rollback = async () => {
    setBusy(true);
    setFailure(null);
    try {
      await answer(api.POST("/api/bots/{name}/rollback", { params, body: {} }));
      props.onDone();
      reload();
    } catch (caught) {
      setFailure(caught);
      reload();
    } finally {
      setBusy(false);
    }
  };
  return (
    <section className="section" aria-labelledby="bot-versions">
      <h2 id="bot-versions">Versions</h2>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table aria-label="Versions" className="bot-stack">
          <thead>
            <tr>
              <th>Version</th>
              <th>State</th>
              <th>Why</th>
              <th>Changes</th>
              <th>Created</th>
              <th>Error</th>
            </tr>
          </thead>
          <tbody>
            {(data?.versions ?? []).map((version) => (
              <tr key={version.version}>
                <td data-label="Version">
                  {version.version}
                  {version.version === props.current ? " (current)" : ""}
                </td>
                <td data-label="State">{version.state}</td>
                <td data-label="Why">
                  {version.reason}
                  {version.summary.rollback_of !== undefined
                    ? ` of ${String(version.summary.rollback_of)}`
                    : ""}
                </td>
                <td data-label="Changes" data-testid={`bot-version-changes-${version.version}`}>
                  <Changes
                    changes={versionChanges(version, data?.versions ?? [])}
                    first={version.reason === "start"}
                  />
                </td>
                <td data-label="Created">{formatDate(version.created_at)}</td>
                <td data-label="Error">
                  {version.error ? <pre className="log-view">{version.error.message}</pre> : ""}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {canRollBack ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => {
            if (window.confirm(`Roll ${props.name} back to its previous version?`)) void rollback();
          }}
        >
          {busy ? "Rolling back…" : "Roll back"}
        </button>
      ) : null}
      <ErrorNote error={failure} />
    </section>
  );
}

function Changes(props: { changes: string[]; first: boolean }) {
  if (props.first) return <span className="meta">first version</span>;
  if (props.changes.length === 0) return <span className="meta">no setting changed</span>;
  return (
    <ul className="bot-version-changes">
      {props.changes.map((change) => (
        <li key={change}>{change}</li>
      ))}
    </ul>
  );
}
