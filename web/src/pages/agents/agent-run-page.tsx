import { type FormEvent, useEffect, useMemo, useState } from "react";
import type { EventOf, RunEvent } from "../../../../src/core/events.js";
import { answer, api, asSubmit, type Schema } from "../../api.js";
import { navigate } from "../../router.js";
import { usd } from "../../usd.js";
import { duration } from "./agent-run-list.js";
import { AgentResult } from "./agent-summary.js";
import { DiffReview } from "./diff-review.js";
import { ErrorNote } from "./error-note.js";
import { followRun } from "./follow-run.js";
import { ToolArguments } from "./tool-input.js";
import { type AgentColumn, agentColumns, soleAgent, type TranscriptItem, toolInput } from "./transcript.js";
import { TurnLinks, TurnPrompt, turnHeading } from "./turn-thread.js";

/** One agent run live: the transcript per agent (side by side in a fan-out), tokens, results, diff. */
export function AgentRunPage(props: { runId: string }) {
  const [run, setRun] = useState<Schema<"Run"> | null>(null);
  const [events, setEvents] = useState<RunEvent[]>([]);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const loadRun = () => answer(api.GET("/api/runs/{id}", { params: { path: { id: props.runId } } }));
    loadRun().then(setRun, setError);
    // Step output (test logs) is for the artifacts, but for the setup step's, shown here; the
    // transcript is the agent's events.
    return followRun(props.runId, 0, (event) => {
      if (event.type === "step.output" && event.step !== "setup") return;
      setEvents((old) => [...old, event]);
      if (event.type === "run.finished" || event.type === "run.started")
        loadRun().then(setRun, () => undefined);
    });
  }, [props.runId]);

  const columns = useMemo(() => agentColumns(events), [events]);
  const finished = events.find((e) => e.type === "run.finished");
  const summaries = finished?.agents ?? [];
  const steps = events.filter((e) => e.type === "step.finished" || e.type === "step.started");
  const notices = events.filter((e) => e.type === "notice");
  const setupOutput = events.flatMap((e) => (e.type === "step.output" && e.step === "setup" ? [e] : []));
  const status = finished?.status ?? run?.status ?? "…";
  const runError = finished?.error ?? run?.error ?? null;
  // Every agent the run has: from the transcript, and from the results (one that never spoke).
  const shown: AgentColumn[] = [...columns];
  for (const s of summaries)
    if (!shown.some((c) => c.agent === s.agent || (c.agent === soleAgent && summaries.length === 1)))
      shown.push({ agent: s.agent, items: [], inputTokens: 0, outputTokens: 0, costUsd: null, model: null });
  const total = shown.reduce(
    (sum, c) => ({
      input: sum.input + c.inputTokens,
      output: sum.output + c.outputTokens,
      cost: sum.cost + (c.costUsd ?? 0),
    }),
    { input: 0, output: 0, cost: 0 },
  );

  return (
    <>
      <p>
        <a href="#/agents">← Agents</a>
      </p>
      <h1>{run?.agent_turn?.prompt ? turnHeading(run.agent_turn.prompt) : (run?.name ?? props.runId)}</h1>
      {run?.agent_turn ? <TurnLinks turn={run.agent_turn} /> : null}
      <ErrorNote error={error} />
      <ul className="stats" aria-label="Run">
        <li>
          {props.runId} ·{" "}
          <span className={`status-${status}`} data-testid="run-status">
            {status}
          </span>
        </li>
        {run ? <li>{duration({ started_at: run.started_at, finished_at: run.finished_at })}</li> : null}
        <li data-testid="run-tokens">
          tokens: {total.input} in, {total.output} out
        </li>
        {total.cost > 0 ? <li>cost: {usd(total.cost)}</li> : null}
      </ul>
      {runError ? (
        <p className="error">
          {runError.code}: {runError.message}
          {runError.hint ? <span className="hint">{runError.hint}</span> : null}
        </p>
      ) : null}
      {run?.agent_turn ? <TurnPrompt turn={run.agent_turn} /> : null}
      {steps.length > 0 ? <Pipeline steps={steps} /> : null}
      {notices.map((n) => (
        <p key={n.seq} className={n.level === "error" ? "error" : "meta"}>
          {n.message}
        </p>
      ))}
      {setupOutput.length > 0 ? (
        <details className="section" open={runError?.code === "AGENT_SETUP_FAILED"}>
          <summary>Setup output</summary>
          <pre data-testid="setup-output">{setupOutput.map((e) => e.data).join("")}</pre>
        </details>
      ) : null}
      <div className="columns">
        {shown.length === 0 ? <p className="meta">Waiting for the agent…</p> : null}
        {shown.map((column) => {
          const summary =
            summaries.find((s) => s.agent === column.agent) ??
            (column.agent === soleAgent && summaries.length === 1 ? summaries[0] : undefined);
          return (
            <section key={column.agent} className="column" aria-label={`Agent ${column.agent}`}>
              <h2>{column.agent}</h2>
              <p className="meta">
                {column.model ?? summary?.model ?? ""} {column.inputTokens} in / {column.outputTokens} out
                tokens
                {column.costUsd !== null ? ` · ${usd(column.costUsd)}` : ""}
              </p>
              <Transcript items={column.items} />
              {summary ? <AgentResult runId={props.runId} summary={summary} /> : null}
            </section>
          );
        })}
      </div>
      {finished ? <DiffReview runId={props.runId} /> : null}
      {finished ? <FollowUp runId={props.runId} /> : null}
    </>
  );
}

/** The pipeline's steps (prepare, agent, test, commit, push) as their latest state. */
function Pipeline(props: { steps: Array<EventOf<"step.started" | "step.finished">> }) {
  const latest = new Map<string, EventOf<"step.started" | "step.finished">>();
  for (const event of props.steps) latest.set(`${event.step}@${event.host}`, event);
  return (
    <ol className="stats" aria-label="Steps">
      {[...latest.entries()].map(([key, event]) => {
        const state = event.type === "step.started" ? "running" : event.status;
        return (
          <li key={key}>
            {event.step} <span className={`status-${state}`}>{state}</span>
          </li>
        );
      })}
    </ol>
  );
}

function Transcript(props: { items: TranscriptItem[] }) {
  if (props.items.length === 0) return <p className="meta">No messages yet.</p>;
  return (
    <ol className="transcript" aria-label="Transcript">
      {props.items.map((item) => {
        if (item.type === "agent.message")
          return (
            <li key={item.seq} className={`msg-${item.role}`}>
              <span className="meta">{item.role}</span>
              <div>{item.text}</div>
            </li>
          );
        if (item.type === "agent.tool_call")
          return (
            <li key={item.seq} className="tool-call">
              <span className="meta">tool call</span> <strong>{item.tool}</strong>
              <ToolArguments value={item.input} />
            </li>
          );
        return (
          <li key={item.seq} className={item.is_error ? "tool-error" : "tool-result"}>
            <span className="meta">{item.is_error ? "tool error" : "tool result"}</span>
            <pre>{toolInput(item.output)}</pre>
          </li>
        );
      })}
    </ol>
  );
}

/** A follow-up message: the next turn is a new run, opened at once. */
function FollowUp(props: { runId: string }) {
  const [text, setText] = useState("");
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);
  const send = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const next = await answer(
        api.POST("/api/runs/{id}/messages", {
          params: { path: { id: props.runId } },
          body: { text },
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
    <form className="form-grid section" onSubmit={send} aria-label="Follow-up">
      <label className="wide">
        Follow-up message
        <textarea rows={3} value={text} onChange={(e) => setText(e.target.value)} required />
      </label>
      <div className="wide actions">
        <button type="submit" disabled={busy}>
          Send
        </button>
        <ErrorNote error={error} />
      </div>
    </form>
  );
}
