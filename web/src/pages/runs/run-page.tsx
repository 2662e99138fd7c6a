import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import type { EventOf, RunEvent, RunEventType } from "../../../../src/core/events.js";
import { finalRunStatuses } from "../../../../src/core/run-states.js";
import { type ApiError, answer, api, asApiError, asSubmit, type Schema } from "../../api.js";
import { formatDate } from "../../dates.js";
import { navigate } from "../../router.js";
import { RunApprovals } from "./approvals.js";
import { type Borrowed, BorrowedStepOutput, borrowedFor } from "./borrowed-output.js";
import { CalledBy, FailedHandlers } from "./called-runs.js";
import { formatBytes, runDuration } from "./format.js";
import { OutputWindow } from "./output-window.js";
import { RunRetries, retriesOf } from "./retries.js";
import { RunStream } from "./run-stream.js";
import { stepFacts } from "./step-facts.js";
import { combinedState, type GraphState, StepGraph } from "./step-graph.js";
import { type StepRow, type StepState, StepTable } from "./step-table.js";
import { StepTimeline } from "./step-timeline.js";
import { RunTerminal, stepKey } from "./terminal.js";

type Run = Schema<"Run">;
type Artifact = Schema<"Artifact">;

/** Events after which the run record (status, steps, vars) has changed. */
const changesRun = new Set<RunEventType>([
  "run.started",
  "step.started",
  "step.finished",
  "step.retrying",
  "step.waiting",
  "approval.answered",
  "vars.exported",
  "run.finished",
]);
/** A stream token lasts 5 minutes: the download link gets a fresh one well before. */
const linkRefreshMs = 4 * 60 * 1000;
/** How often a running call's child steps are asked for again. */
const callRefreshMs = 2000;

const isFinal = (run: Run): boolean => finalRunStatuses.includes(run.status);

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
    if (event.type === "step.started")
      into.set(stepKey(event), { name: event.step, host: event.host, status: "running" });
    else if (event.type === "step.waiting")
      into.set(stepKey(event), { name: event.step, host: event.host, status: "waiting" });
    else if (event.type === "step.retrying")
      into.set(stepKey(event), { name: event.step, host: event.host, status: "retrying" });
    else if (event.type === "step.finished")
      into.set(stepKey(event), { name: event.step, host: event.host, status: event.status });
    else if (event.type === "step.output" && !into.has(stepKey(event)))
      into.set(stepKey(event), { name: event.step, host: event.host, status: "running" });
  }
}

export function RunPage({ id }: { id: string }) {
  const path = `/api/runs/${encodeURIComponent(id)}`;
  const params = useMemo(() => ({ path: { id } }), [id]);
  const [run, setRun] = useState<Run | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [artifacts, setArtifacts] = useState<Artifact[]>([]);
  const [steps, setSteps] = useState<Map<string, StepState>>(new Map());
  const [retries, setRetries] = useState<Map<number, EventOf<"step.retrying">>>(new Map());
  const [filter, setFilter] = useState("all");
  const [logUrl, setLogUrl] = useState<string | null>(null);
  const [canceling, setCanceling] = useState(false);
  const [now, setNow] = useState(Date.now());
  const [view, setView] = useState<"graph" | "timeline">("graph");
  /** The step whose output is another run's (a call's child, a kept step's first run), when selected. */
  const [borrowed, setBorrowed] = useState<Borrowed | null>(null);
  const output = useMemo(() => new OutputWindow(id), [id]);
  const refreshing = useRef<Promise<void> | null>(null);

  // One request at a time; a change told meanwhile asks once more after it, so the last answer
  // is never older than the last event. A record asked for before events the page has drawn
  // since is not drawn over them (its steps would step back, `success` to `running`, until the
  // next answer): it is asked for again, and a request sent after those events has them.
  const again = useRef(false);
  const refresh = useCallback(async (): Promise<void> => {
    if (refreshing.current) {
      again.current = true;
      return refreshing.current;
    }
    refreshing.current = (async () => {
      let stale = 0;
      do {
        again.current = false;
        try {
          const record = await answer(api.GET("/api/runs/{id}", { params }));
          if (record.last_seq < output.lastSeq && stale++ < 5) {
            again.current = true;
            continue;
          }
          stale = 0;
          setRun(record);
          setArtifacts((await answer(api.GET("/api/runs/{id}/artifacts", { params }))).artifacts);
        } catch (caught) {
          setError(asApiError(caught));
        }
      } while (again.current);
      refreshing.current = null;
    })();
    return refreshing.current;
  }, [params, output]);

  useEffect(() => {
    let stream: RunStream | undefined;
    let stopped = false;
    const known = new Map<string, StepState>();
    const retried = new Map<number, EventOf<"step.retrying">>();
    (async () => {
      try {
        // Both at once: the run's record and its output's tail.
        const [first, events] = await Promise.all([
          answer(api.GET("/api/runs/{id}", { params })),
          output.loadTail(),
        ]);
        if (stopped) return;
        setRun(first);
        void refresh();
        stepStates(events, known);
        setSteps(new Map(known));
        retriesOf(events, retried);
        setRetries(new Map(retried));
        if (isFinal(first)) return;
        stream = new RunStream(
          id,
          output.lastSeq,
          (batch) => {
            output.push(batch);
            stepStates(batch, known);
            setSteps(new Map(known));
            retriesOf(batch, retried);
            setRetries(new Map(retried));
            if (batch.some((event) => changesRun.has(event.type))) void refresh();
          },
          () => void refresh(),
        );
        stream.start();
        // Tests (and devtools) read how often it connected: a reconnect shows as 2.
        Object.assign(window, { runyardStream: stream });
      } catch (caught) {
        if (!stopped) setError(asApiError(caught));
      }
    })();
    return () => {
      stopped = true;
      stream?.stop();
    };
  }, [id, params, output, refresh]);

  // The raw download is a plain link: it carries a stream token, renewed before it expires.
  useEffect(() => {
    let stopped = false;
    const renew = async () => {
      try {
        const token = await answer(api.POST("/api/runs/{id}/stream-token", { params }));
        if (!stopped) setLogUrl(`${path}/log?access_token=${token.token}`);
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
  }, [path, params]);

  const live = run !== null && !isFinal(run);
  useEffect(() => {
    if (!live) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [live]);
  // A called run's steps come in its own events, not this run's: while one goes on, its states
  // are asked for again every few seconds, as the runs list does.
  const calling = run?.calls?.some((call) => !finalRunStatuses.includes(call.status)) ?? false;
  useEffect(() => {
    if (!calling) return;
    const timer = setInterval(() => void refresh(), callRefreshMs);
    return () => clearInterval(timer);
  }, [calling, refresh]);

  const cancel = async () => {
    setCanceling(true);
    try {
      await answer(api.POST("/api/runs/{id}/cancel", { params }));
      await refresh();
    } catch (caught) {
      setError(asApiError(caught));
    } finally {
      setCanceling(false);
    }
  };

  const rerun = async () => {
    try {
      const next = await answer(api.POST("/api/runs/{id}/rerun", { params, ...asSubmit }));
      navigate(`/runs/${encodeURIComponent(next.run_id)}`);
    } catch (caught) {
      setError(asApiError(caught));
    }
  };

  /** A new run that keeps the steps before `from` (default: the first that did not succeed). */
  const retryFrom = async (from?: string) => {
    try {
      const next = await answer(
        api.POST("/api/runs/{id}/retry", {
          params,
          body: { vars: {}, ...(from !== undefined ? { from } : {}) },
          ...asSubmit,
        }),
      );
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
  const allSteps: StepRow[] = [...summed.values()];
  for (const [key, step] of steps) if (!summed.has(key)) allSteps.push(step);
  const statesByName = new Map<string, GraphState[]>();
  for (const step of allSteps)
    statesByName.set(step.name, [...(statesByName.get(step.name) ?? []), step.status]);
  const stateOf = (name: string): GraphState => combinedState(statesByName.get(name) ?? []);
  // A box's facts: its step's summaries, or all its combinations' for a matrix step.
  const factsOf = (name: string) => {
    const names = new Set(run.graph?.steps.find((step) => step.name === name)?.matrix ?? [name]);
    return stepFacts(
      allSteps.filter((step) => names.has(step.name)),
      now,
    );
  };
  const runStart = run.started_at ? Date.parse(run.started_at) : now;
  const runEnd = run.finished_at ? Date.parse(run.finished_at) : now;
  const rollbackStateOf = (name: string): GraphState | undefined =>
    statesByName.has(`rollback: ${name}`) ? stateOf(`rollback: ${name}`) : undefined;
  const callOf = (name: string) => run.calls?.find((call) => call.step === name);
  // A box shows its step's output; a matrix step's box, its first combination's; a call step's,
  // its child run's; a kept step's, that of the run it was kept from.
  const selectStep = (name: string) => {
    const combination = run.graph?.steps.find((step) => step.name === name)?.matrix?.[0];
    const shown = allSteps.find((step) => step.name === (combination ?? name));
    setBorrowed(borrowedFor(run, shown ?? { name, host: "" }));
    if (shown) setFilter(`${shown.name}@${shown.host}`);
  };
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
          {run.retry_of && (
            <>
              <dt>Retry of</dt>
              <dd>
                <a href={`#/runs/${encodeURIComponent(run.retry_of)}`}>{run.retry_of}</a>
                {run.retry_from && <> from {run.retry_from}</>}
              </dd>
            </>
          )}
          {run.retries && run.retries.length > 0 && (
            <>
              <dt>Retried by</dt>
              <dd>
                {run.retries.map((retry) => (
                  <span key={retry.run_id} className="run-retry">
                    <a href={`#/runs/${encodeURIComponent(retry.run_id)}`}>{retry.run_id}</a> ({retry.status}){" "}
                  </span>
                ))}
              </dd>
            </>
          )}
          {run.authored_by && run.authored_by !== run.created_by && (
            <>
              <dt>Written by</dt>
              <dd title={run.authored_by}>{run.authored_by_name ?? run.authored_by}</dd>
            </>
          )}
          <CalledBy run={run} />
        </dl>
        {run.error && (
          <div role="alert" className="error run-error">
            <strong>{run.error.code}</strong>: {run.error.message}
            {run.error.hint && <p className="hint">{run.error.hint}</p>}
          </div>
        )}
        {run.rolled_back && <p className="hint run-rollback">Rolled back: every rollback succeeded.</p>}
        {run.rollback_failed && (
          <p role="alert" className="error run-rollback">
            Rollback failed at <code>{run.rollback_failed}</code>; the rollbacks after it did not run.
          </p>
        )}
        <FailedHandlers run={run} />
        {run.status === "queued" && run.waiting_for && run.waiting_for.length > 0 && (
          <ul className="hint waiting-for">
            {/* One line per reason: every host of a run waiting for its concurrency group says the same. */}
            {[
              ...new Set(
                run.waiting_for.map(
                  (need) =>
                    need.reason ??
                    `Waiting for a runner: ${need.host}${need.group ? ` (group ${need.group})` : ""}${need.labels.length ? ` [${need.labels.join(", ")}]` : ""}`,
                ),
              ),
            ].map((reason) => (
              <li key={reason}>{reason}</li>
            ))}
          </ul>
        )}
        <RunApprovals run={run} onAnswered={() => void refresh()} />
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
          {run.kind === "workflow" && !live && (
            <button type="button" onClick={() => navigate(`/runs/${encodeURIComponent(run.id)}/retry`)}>
              Edit and retry
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

      {run.graph && (
        <>
          <div className="run-output-head">
            <h2>{view === "graph" ? "Graph" : "Timeline"}</h2>
            <fieldset className="run-view-switch">
              <legend>Show the steps as</legend>
              <button type="button" aria-pressed={view === "graph"} onClick={() => setView("graph")}>
                Graph
              </button>
              <button type="button" aria-pressed={view === "timeline"} onClick={() => setView("timeline")}>
                Timeline
              </button>
            </fieldset>
          </div>
          {view === "graph" ? (
            <StepGraph
              graph={run.graph}
              stateOf={stateOf}
              factsOf={factsOf}
              rollbackStateOf={rollbackStateOf}
              callOf={callOf}
              now={now}
              onSelect={selectStep}
            />
          ) : (
            <StepTimeline
              start={runStart}
              end={runEnd}
              rows={allSteps.map((step) => ({
                key: `${step.name}@${step.host}`,
                label: allSteps.some((other) => other.name === step.name && other.host !== step.host)
                  ? `${step.name} on ${step.host}`
                  : step.name,
                state: step.status,
                facts: stepFacts([step], now),
              }))}
            />
          )}
        </>
      )}

      <div className="run-output-head">
        <h2>Output</h2>
        <label className="run-step-filter">
          Show{" "}
          <select
            value={filter}
            onChange={(event) => {
              setBorrowed(null);
              setFilter(event.target.value);
            }}
          >
            <option value="all">all steps</option>
            {allSteps.map((step) => (
              <option key={`${step.name}@${step.host}`} value={`${step.name}@${step.host}`}>
                {step.name} on {step.host}
              </option>
            ))}
          </select>
        </label>
      </div>
      {borrowed ? (
        <BorrowedStepOutput run={run} borrowed={borrowed} onBack={() => setBorrowed(null)} />
      ) : (
        <RunTerminal output={output} filter={filter} live={live} />
      )}

      <h2>Steps</h2>
      {allSteps.length === 0 ? (
        <p className="hint">No step has started yet.</p>
      ) : (
        <StepTable
          run={run}
          steps={allSteps}
          factsOf={(step) => stepFacts([step], now)}
          live={live}
          onRetry={(from) => void retryFrom(from)}
        />
      )}

      <RunRetries retries={[...retries.values()]} />

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
                <ArtifactLink runId={run.id} artifact={artifact} />{" "}
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
function ArtifactLink({ runId, artifact }: { runId: string; artifact: Artifact }) {
  const download = async () => {
    const blob = await answer(
      api.GET("/api/runs/{id}/artifacts/{name}", {
        params: { path: { id: runId, name: artifact.name } },
        parseAs: "blob",
      }),
    );
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
