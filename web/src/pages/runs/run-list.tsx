import { useEffect, useState } from "react";
import { runKinds, runStatuses } from "../../../../src/core/run-states.js";
import { type AnswerOf, type ApiError, answer, api, asApiError } from "../../api.js";
import { formatDate } from "../../dates.js";
import { navigate, routeQuery } from "../../router.js";
import { runDuration } from "./format.js";
import { TriggerCell, triggerFilters } from "./trigger-cell.js";

/** A value of the hash query that names one of `known`, or undefined (as "any"). */
function oneOf<Known extends string>(known: readonly Known[], value: string | null): Known | undefined {
  return known.find((item) => item === value);
}
/** How often the list asks again while the tab is visible: a run's status changes show within it. */
const pollMs = 2000;

/** The hash query of the list (`#/runs?status=failed&kind=workflow&before=...`). */
function listHash(query: URLSearchParams): string {
  const text = query.toString();
  return text ? `/runs?${text}` : "/runs";
}

function useHashQuery(): URLSearchParams {
  const [query, setQuery] = useState(routeQuery);
  useEffect(() => {
    const changed = () => setQuery(routeQuery());
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return query;
}

export function RunListPage() {
  const query = useHashQuery();
  const status = oneOf(runStatuses, query.get("status"));
  const kind = oneOf(runKinds, query.get("kind"));
  const trigger = oneOf(triggerFilters, query.get("trigger"));
  const before = query.get("before") ?? "";
  const [list, setList] = useState<AnswerOf<"listRuns"> | null>(null);
  const [error, setError] = useState<ApiError | null>(null);
  const [now, setNow] = useState(Date.now());

  useEffect(() => {
    const filters = {
      limit: 50,
      ...(status ? { status } : {}),
      ...(kind ? { kind } : {}),
      ...(trigger ? { trigger } : {}),
      ...(before ? { before } : {}),
    };
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const load = async () => {
      try {
        const page = await answer(api.GET("/api/runs", { params: { query: filters } }));
        if (stopped) return;
        setList(page);
        setError(null);
        setNow(Date.now());
      } catch (caught) {
        if (!stopped) setError(asApiError(caught));
      }
      // A hidden tab stops asking; it asks again when shown.
      if (!stopped && document.visibilityState === "visible") timer = setTimeout(load, pollMs);
    };
    const shown = () => {
      if (document.visibilityState === "visible" && timer === undefined) void load();
    };
    const hidden = () => {
      if (document.visibilityState !== "visible" && timer !== undefined) {
        clearTimeout(timer);
        timer = undefined;
      }
    };
    const visibility = () => (document.visibilityState === "visible" ? shown() : hidden());
    document.addEventListener("visibilitychange", visibility);
    void load();
    return () => {
      stopped = true;
      clearTimeout(timer);
      document.removeEventListener("visibilitychange", visibility);
    };
  }, [status, kind, trigger, before]);

  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    next.delete("before");
    navigate(listHash(next));
  };

  const olderHash = () => {
    const next = new URLSearchParams(query);
    next.set("before", list?.next ?? "");
    return `#${listHash(next)}`;
  };
  const newestHash = () => {
    const next = new URLSearchParams(query);
    next.delete("before");
    return `#${listHash(next)}`;
  };

  return (
    <section className="runs-page">
      <h1>Runs</h1>
      <div className="runs-filters">
        <label>
          Status{" "}
          <select value={status ?? ""} onChange={(event) => setFilter("status", event.target.value)}>
            <option value="">any</option>
            {runStatuses.map((value) => (
              <option key={value}>{value}</option>
            ))}
          </select>
        </label>
        <label>
          Kind{" "}
          <select value={kind ?? ""} onChange={(event) => setFilter("kind", event.target.value)}>
            <option value="">any</option>
            {runKinds.map((value) => (
              <option key={value}>{value}</option>
            ))}
          </select>
        </label>
        <label>
          Trigger{" "}
          <select value={trigger ?? ""} onChange={(event) => setFilter("trigger", event.target.value)}>
            <option value="">any</option>
            {triggerFilters.map((value) => (
              <option key={value}>{value}</option>
            ))}
          </select>
        </label>
      </div>
      {error && (
        <p role="alert" className="error">
          {error.message}
          {error.hint ? ` ${error.hint}` : ""}
        </p>
      )}
      {list === null && !error && <p className="loading">Loading…</p>}
      {list && list.runs.length === 0 && (
        <p className="runs-empty">
          {status || kind || trigger || before ? "No runs match these filters. " : "No runs yet. "}
          <a href="#/run">Run a workflow</a> to start one (or <code>runyard run FILE</code>).
        </p>
      )}
      {list && list.runs.length > 0 && (
        <div className="table-wrap">
          <table className="runs-table">
            <thead>
              <tr>
                <th scope="col">Status</th>
                <th scope="col">Kind</th>
                <th scope="col">Name</th>
                <th scope="col">Trigger</th>
                <th scope="col">Who</th>
                <th scope="col">Started</th>
                <th scope="col">Duration</th>
              </tr>
            </thead>
            <tbody>
              {list.runs.map((run) => (
                <tr key={run.id}>
                  <td className={`status-${run.status}`}>{run.status}</td>
                  <td>{run.kind}</td>
                  <td>
                    <a href={`#/runs/${encodeURIComponent(run.id)}`}>{run.name || run.id}</a>
                  </td>
                  <td>
                    <TriggerCell run={run} />
                  </td>
                  <td>{run.created_by_name ?? run.created_by ?? ""}</td>
                  <td>{formatDate(run.started_at ?? run.created_at)}</td>
                  <td>{runDuration(run, now)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <nav className="runs-paging" aria-label="Pages">
        {before && <a href={newestHash()}>Newest</a>}
        {list?.next && <a href={olderHash()}>Older runs</a>}
      </nav>
    </section>
  );
}
