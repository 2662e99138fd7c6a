import { RunnerTable } from "./runners/runner-table.js";
import { pollMs, useRunners } from "./runners/use-runners.js";
import "./runners/runners.css";

/** Settings -> Runners, as in the ADOS runner's UI: every runner this server knows, live. */
export function RunnersPage(_props: { route: string[] }) {
  const { runners, error } = useRunners();
  const server = window.location.origin;
  return (
    <div className="runners">
      <h1>Runners</h1>
      <p className="hint">Updated every {pollMs / 1000} s while this page is open.</p>
      {error && (
        <p className="error" role="alert">
          Could not list the runners: {error}
        </p>
      )}
      {runners === undefined ? (
        <p className="loading">Loading…</p>
      ) : runners.length === 0 ? (
        <section className="empty" aria-label="No runners">
          <h2>No runner yet</h2>
          <p>Runs wait until a runner takes their jobs. Make a runner token, then start a runner with it:</p>
          <pre>
            <code>{`runyard token create --runner
runyard runner --server ${server} --token T`}</code>
          </pre>
          <p className="hint">
            <code>runyard up</code> starts one on this machine by itself.
          </p>
        </section>
      ) : (
        <RunnerTable runners={runners} />
      )}
    </div>
  );
}
