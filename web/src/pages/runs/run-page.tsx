import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import { ApiError, api } from "../../api.js";
import { formatDate } from "../../dates.js";
import { navigate } from "../../router.js";
import { formatBytes, formatDuration, runDuration } from "./format.js";
import { OutputWindow } from "./output-window.js";
import { RunStream } from "./run-stream.js";
import { RunTerminal, stepKey } from "./terminal.js";
import { type Artifact, finalStatuses, type Run, type RunEvent, type StepSummary } from "./types.js";

/** Events after which the run record (status, steps, vars) has changed. */
const changesRun = new Set([
  "run.started",
  "step.started",
  "step.finished",
  "step.retrying",
  "vars.exported",
  "run.finished",
]);
/** A stream token lasts 5 minutes: the download link gets a fresh one well before. */
const linkRefreshMs = 4 * 60 * 1000;

const asApiError = (caught: unknown): ApiError =>
  caught instanceof ApiError ? caught : new ApiError(0, "NETWORK", String(caught), undefined, undefined);

type StepState = Pick<StepSummary, "name" | "host" | "status">;

/**
 * A run that succeeded with a failed step let that step fail (`continue_on_error`): the table
 * says so rather than show a bare "failed" under "success".
 */
function stepStatusText(step: StepState, run: Run): string {
  return run.status === "success" && step.status === "failed" ? "failed (allowed)" : step.status;
}

/** A variable's row: its name and (masked) value. */
function VariableTable({ label, vars }: { label: string; vars: Array<[string, string]> }) {
  return (
    <div className="table-wrap">
      <table aria-label={label}>
        <tbody>
          {vars.map(([name, value]) => (
            <tr key={name}>
              <th scope="row">
                <code>{name}</code>
              </th>
              <td>
                <code>{value}</code>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** Step states as the events tell them, for steps the run record does not sum up yet. */
function stepStates(events: RunEvent[], into: Map<string, StepState>): void {
  for (const event of events) {
    if (event.type === "step.started" && event.step)
      into.set(stepKey(event), { name: event.step, host: event.host ?? "", status: "running" });
    else if (event.type === "step.retrying" && event.step)
      into.set(stepKey(event), { name: event.step, host: event.host ?? "", status: "retrying" });
    else if (event.type === "step.finished" && event.step)
      into.set(stepKey(event), {
        name: event.step,
        host: event.host ?? "",
        status: event.status ?? "finished",
      });
    else if (event.type === "step.output" && event.step && !into.has(stepKey(event)))
      into.set(stepKey(event), { name: event.step, host: event.host ?? "", status: "running" });
  }
}

export function RunPage({ id }: { id: string }) {
  const path = `/api/runs/${encodeURIComponent(id)}`;
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [steps, setSteps] = useState<Map<string, StepState>>(new Map());
  const [filter, setFilter] = useState("all");
  const [logUrl, setLogUrl] = useState<string | null>(null);
  const [canceling, setCanceling] = useState(false);
  const [now, setNow] = useState(Date.now());
  const output = useMemo(() => new OutputWindow(id), [id]);
  const refreshing = useRef<Promise<void> | null>(null);

  // One request at a time; a change told meanwhile asks once more after it, so the last answer
  // is never older than the last event.
  const again = useRef(false);
  const refresh = useCallback(async (): Promise<void> => {
    if (refreshing.current) {
      again.current = true;
      return refreshing.current;
    }
    refreshing.current = (async () => {
      do {
        again.current = false;
        try {
          setRun(await api<Run>("GET", path));
          setArtifacts((await api<{ artifacts: Artifact[] }>("GET", `${path}/artifacts`)).artifacts);
        } catch (caught) {
          setError(asApiError(caught));
        }
      } while (again.current);
      refreshing.current = null;
    })();
    return refreshing.current;
  }, [path]);

  useEffect(() => {
    let stream: RunStream | undefined;
    let stopped = false;
    const known = new Map<string, StepState>();
    (async () => {
      try {
        // Both at once: the run's record and its output's tail.
        const [first, events] = await Promise.all([api<Run>("GET", path), output.loadTail()]);
        if (stopped) return;
        setRun(first);
        void refresh();
        stepStates(events, known);
        setSteps(new Map(known));
        if (finalStatuses.has(first.status)) return;
        stream = new RunStream(
          id,
          output.lastSeq,
          (batch) => {
            output.push(batch);
            stepStates(batch, known);
            setSteps(new Map(known));
            if (batch.some((event) => changesRun.has(event.type))) void refresh();
          },
          () => void refresh(),
        );
        stream.start();
        // Tests (and devtools) read how often it connected: a reconnect shows as 2.
        (window as Window & { runyardStream?: RunStream }).runyardStream = stream;
      } catch (caught) {
        if (!stopped) setError(asApiError(caught));
      }
    })();
    return () => {
      stopped = true;
      stream?.stop();
    };
  }, [id, path, output, refresh]);

  // The raw download is a plain link: it carries a stream token, renewed before it expires.
  useEffect(() => {
    let stopped = false;
    const renew = async () => {
      try {
        const answer = await api<{ token: string }>("POST", `${path}/stream-token`);
        if (!stopped) setLogUrl(`${path}/log?access_token=${answer.token}`);
      } catch {
        if (!stopped) setLogUrl(null);
      }
    };
    void renew();
    const timer = setInterval(renew, linkRefreshMs);
    return () => {
      stopped = true;
      clearInterval(timer);
    };
  }, [path]);

  const live = run !== null && !finalStatuses.has(run.status);
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live]);

  const cancel = async () => {
    setCanceling(true);
    try {
      await api("POST", `${path}/cancel`);
      await refresh();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setCanceling(false);
    }
  };

  const rerun = async () => {
    try {
      const next = await api<{ run_id: string }>("POST", `${path}/rerun`);
      navigate(`/runs/${encodeURIComponent(next.run_id)}`);
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  if (!run) {
    return error ? (
      <p role="alert" className="error">
        {error.message}
        {error.hint ? ` ${error.hint}` : ""}
      </p>
    ) : (
      <p className="loading">Loading…</p>
    );
  }

  // The record's steps once summed up; before that, what the events told.
  const summed = new Map(run.steps.map((step) => [stepKey({ step: step.name, host: step.host }), step]));
  const allSteps: Array<StepState & Partial<StepSummary>> = [...summed.values()];
  for (const [key, step] of steps) if (!summed.has(key)) allSteps.push(step);
  // What the run started with, apart from what its steps exported (a new name, or a new value).
  const inputs = Object.entries(run.inputs ?? {});
  const exported = Object.entries(run.vars).filter(
    ([name, value]) => run.inputs === undefined || run.inputs[name] !== value,
  );

  return (
    <section className="run-page">
      <p>
        <a href="#/runs">← Runs</a>
      </p>
      <header className="run-header">
        <h1>
          {run.name || run.id} <span className={`status-${run.status}`}>{run.status}</span>
        </h1>
        <dl className="run-facts">
          <dt>Run</dt>
          <dd>
            <code>{run.id}</code>
          </dd>
          <dt>Kind</dt>
          <dd>{run.kind}</dd>
          <dt>Started</dt>
          <dd>{formatDate(run.started_at) || "not yet"}</dd>
          <dt>Duration</dt>
          <dd>{runDuration(run, now) || "—"}</dd>
          {run.created_by && (
            <>
              <dt>Who</dt>
              <dd title={run.created_by}>{run.created_by_name ?? run.created_by}</dd>
            </>
          )}
        </dl>
        {run.error && (
          <div role="alert" className="error run-error">
            <strong>{run.error.code}</strong>: {run.error.message}
            {run.error.hint && <p className="hint">{run.error.hint}</p>}
          </div>
        )}
        {run.status === "queued" && run.waiting_for && run.waiting_for.length > 0 && (
          <ul className="hint waiting-for">
            {run.waiting_for.map((need) => (
              <li key={need.host}>
                {need.reason ??
                  `Waiting for a runner: ${need.host}${need.group ? ` (group ${need.group})` : ""}${need.labels.length ? ` [${need.labels.join(", ")}]` : ""}`}
              </li>
            ))}
          </ul>
        )}
        <div className="run-actions">
          {live && (
            <button type="button" onClick={cancel} disabled={canceling}>
              {canceling ? "Canceling…" : "Cancel"}
            </button>
          )}
          {run.kind === "workflow" && (
            <button type="button" onClick={rerun}>
              Re-run
            </button>
          )}
          {logUrl && (
            <a className="button" href={logUrl} download={`${run.id}.log`}>
              Download raw log
            </a>
          )}
        </div>
        {error && (
          <p role="alert" className="error">
            {error.message}
            {error.hint ? ` ${error.hint}` : ""}
          </p>
        )}
      </header>

      <div className="run-output-head">
        <h2>Output</h2>
        <label className="run-step-filter">
          Show{" "}
          <select value={filter} onChange={(event) => setFilter(event.target.value)}>
            <option value="all">all steps</option>
            {allSteps.map((step) => (
              <option key={`${step.name}@${step.host}`} value={`${step.name}@${step.host}`}>
                {step.name} on {step.host}
              </option>
            ))}
          </select>
        </label>
      </div>
      <RunTerminal output={output} filter={filter} live={live} />

      <h2>Steps</h2>
      {allSteps.length === 0 ? (
        <p className="hint">No step has started yet.</p>
      ) : (
        <div className="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">Step</th>
                <th scope="col">Host</th>
                <th scope="col">Status</th>
                <th scope="col">Exit</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {allSteps.map((step) => (
                <tr key={`${step.name}@${step.host}`}>
                  <td>{step.name}</td>
                  <td>{step.host}</td>
                  <td
                    className={`status-${step.status}`}
                    title={
                      stepStatusText(step, run) === step.status
                        ? undefined
                        : "this step may fail (continue_on_error): the run went on"
                    }
                  >
                    {stepStatusText(step, run)}
                  </td>
                  <td>{step.exit_code ?? ""}</td>
                  <td>{step.duration_ms !== undefined ? formatDuration(step.duration_ms) : ""}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      {inputs.length > 0 && (
        <>
          <h2>Variables</h2>
          <VariableTable label="Variables" vars={inputs} />
        </>
      )}

      {exported.length > 0 && (
        <>
          <h2>Exported variables</h2>
          <VariableTable label="Exported variables" vars={exported} />
        </>
      )}

      {artifacts.length > 0 && (
        <>
          <h2>Artifacts</h2>
          <ul className="run-artifacts">
            {artifacts.map((artifact) => (
              <li key={artifact.name}>
                <ArtifactLink artifact={artifact} />{" "}
                <span className="hint">{formatBytes(artifact.size)}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </section>
  );
}

/** Artifacts need the Bearer header: fetched on click, then saved from a blob (they are small). */
function ArtifactLink({ artifact }: { artifact: Artifact }) {
  const download = async () => {
    const token = sessionStorage.getItem("runyard.token");
    const response = await fetch(artifact.url, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    const blob = await response.blob();
    const url = URL.createObjectURL(blob);
    const link = document.createElement("a");
    link.href = url;
    link.download = artifact.name;
    link.click();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  };
  return (
    <button type="button" className="link" onClick={download}>
      {artifact.name}
    </button>
  );
}
