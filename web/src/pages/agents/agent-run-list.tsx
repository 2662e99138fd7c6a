import { useEffect, useState } from "react";
import { answer, api, type Schema } from "../../api.js";
import { formatDate } from "../../dates.js";
import { ErrorNote } from "./error-note.js";

type Run = Schema<"Run">;

/** How long a run took (or has taken so far). */
export function duration(run: Pick<Run, "started_at" | "finished_at">): string {
  if (!run.started_at) return "";
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  const secs = Math.max(0, Math.round((end - Date.parse(run.started_at)) / 1000));
  return secs < 60 ? `${secs} s` : `${Math.floor(secs / 60)} min ${secs % 60} s`;
}

/** The agent runs, newest first, polled while the page is open. */
export function AgentRunList() {
  const [runs, setRuns] = useState<Run[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    let alive = true;
    const load = () =>
      answer(api.GET("/api/runs", { params: { query: { kind: "agent", limit: 50 } } })).then(
        (page) => {
          if (!alive) return;
          setRuns(page.runs);
          setError(null);
        },
        (caught) => alive && setError(caught),
      );
    void load();
    const timer = setInterval(load, 3000);
    return () => {
      alive = false;
      clearInterval(timer);
    };
  }, []);

  if (runs === null) return error ? <ErrorNote error={error} /> : <p className="loading">Loading…</p>;
  if (runs.length === 0) return <p className="meta">No agent runs yet.</p>;
  return (
    <div className="table-wrap">
      <table aria-label="Agent runs">
        <thead>
          <tr>
            <th>Run</th>
            <th>Turn</th>
            <th>Task</th>
            <th>Status</th>
            <th>Submitted</th>
            <th>Duration</th>
          </tr>
        </thead>
        <tbody>
          {threads(runs).flatMap((thread) =>
            thread.map((run) => {
              const turn = run.agent_turn;
              const later = turn && turn.turn > 1;
              return (
                <tr key={run.run_id} className={later ? "follow-up-turn" : undefined}>
                  <td>
                    <a href={`#/agents/${encodeURIComponent(run.run_id)}`}>{run.run_id}</a>
                  </td>
                  <td>{turn ? turnOf(turn.turn, thread) : ""}</td>
                  <td>{later ? `↳ ${turn.excerpt}` : run.name}</td>
                  <td className={`status-${run.status}`}>{run.status}</td>
                  <td>{formatDate(run.created_at)}</td>
                  <td>{duration(run)}</td>
                </tr>
              );
            }),
          )}
        </tbody>
      </table>
    </div>
  );
}

/** "2 of 3" for a turn of a task with more than one turn listed; "1" alone. */
function turnOf(turn: number, thread: Run[]): string {
  const last = Math.max(...thread.map((run) => run.agent_turn?.turn ?? 1));
  return last > 1 ? `${turn} of ${last}` : String(turn);
}

/**
 * The runs grouped by task: each task's turns together, first turn first, the task with the
 * newest turn on top (a follow-up brings its task up).
 */
function threads(runs: Run[]): Run[][] {
  const byTask = new Map<string, Run[]>();
  for (const run of runs) {
    const key = run.agent_turn?.conversation ?? run.run_id;
    byTask.set(key, [...(byTask.get(key) ?? []), run]);
  }
  return [...byTask.values()].map((thread) =>
    [...thread].sort((a, b) => (a.agent_turn?.turn ?? 1) - (b.agent_turn?.turn ?? 1)),
  );
}
