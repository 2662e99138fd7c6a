import { useState } from "react";
import { answer, api, asSubmit } from "../api.js";
import { formatDate } from "../dates.js";
import { navigate } from "../router.js";
import { type SavedWorkflowRow, type Schedule, useWorkflowLists } from "./workflows/use-workflow-lists.js";
import "./workflows/workflows.css";

function lastTick(schedule: Schedule): string {
  const tick = schedule.last_tick;
  if (!tick) return "—";
  const what = tick.outcome === "missed" && tick.ticks > 1 ? `missed (${tick.ticks} ticks)` : tick.outcome;
  return `${formatDate(schedule.last_tick_at)} · ${what}${tick.detail ? ` · ${tick.detail}` : ""}`;
}

/** Saved workflows (with Run), the schedules that start them and the signed webhooks. */
export function WorkflowsPage(_props: { route: string[] }) {
  const { lists, error, reload } = useWorkflowLists();
  const [runError, setRunError] = useState<string | null>(null);
  const promote = async (workflow: SavedWorkflowRow, version: number) => {
    setRunError(null);
    try {
      await answer(
        api.POST("/api/workflows/{name}/promote", {
          params: {
            path: { name: workflow.name },
            query: workflow.tenant_id === null ? {} : { tenant: workflow.tenant_id },
          },
          body: { version },
        }),
      );
      reload();
    } catch (caught) {
      setRunError(caught instanceof Error ? caught.message : String(caught));
    }
  };
  const run = async (name: string) => {
    setRunError(null);
    try {
      const started = await answer(
        api.POST("/api/workflows/{name}/runs", { params: { path: { name } }, body: {}, ...asSubmit }),
      );
      navigate(`/runs/${started.run_id}`);
    } catch (caught) {
      setRunError(caught instanceof Error ? caught.message : String(caught));
    }
  };
  if (error)
    return (
      <p className="error" role="alert">
        Could not list the saved workflows: {error}
      </p>
    );
  if (!lists) return <p className="loading">Loading…</p>;
  return (
    <div className="workflows">
      <h1>Saved workflows</h1>
      {runError && (
        <p className="error" role="alert">
          {runError}
        </p>
      )}
      {lists.workflows.length === 0 ? (
        <p className="hint">
          None yet. Save one with <code>runyard workflow save FILE</code>.
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Saved workflows">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Version</th>
                <th scope="col">Live</th>
                <th scope="col">Saved</th>
                <th scope="col" />
              </tr>
            </thead>
            <tbody>
              {lists.workflows.map((workflow) => (
                <tr key={`${workflow.tenant_id}/${workflow.name}`} data-workflow={workflow.name}>
                  <th scope="row">{workflow.name}</th>
                  <td>
                    {workflow.latest_version} of {workflow.versions}
                  </td>
                  <td data-live>
                    {workflow.live_version ?? "—"}
                    {workflow.pending_versions.length > 0 &&
                      ` · pending ${workflow.pending_versions.join(", ")}`}
                  </td>
                  <td>{formatDate(workflow.updated_at)}</td>
                  <td>
                    <button type="button" onClick={() => void run(workflow.name)}>
                      Run
                    </button>
                    {workflow.pending_versions.length > 0 && (
                      <button
                        type="button"
                        title="Make this version what the workflow's hooks and schedules run"
                        onClick={() => void promote(workflow, workflow.pending_versions.at(-1) ?? 0)}
                      >
                        Promote v{workflow.pending_versions.at(-1)}
                      </button>
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Schedules</h2>
      {lists.schedules.length === 0 ? (
        <p className="hint">
          None. A saved workflow with a <code>schedule:</code> runs on its own.
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Schedules">
            <thead>
              <tr>
                <th scope="col">Workflow</th>
                <th scope="col">Cron</th>
                <th scope="col">Time zone</th>
                <th scope="col">Next tick</th>
                <th scope="col">Last tick</th>
              </tr>
            </thead>
            <tbody>
              {lists.schedules.map((schedule) => (
                <tr key={schedule.id} data-schedule={schedule.workflow}>
                  <th scope="row">{schedule.workflow}</th>
                  <td>
                    <code>{schedule.cron}</code>
                  </td>
                  <td>{schedule.timezone}</td>
                  <td>{formatDate(schedule.next_tick_at) || "—"}</td>
                  <td>
                    {schedule.last_tick?.run_id ? (
                      <a href={`#/runs/${schedule.last_tick.run_id}`}>{lastTick(schedule)}</a>
                    ) : (
                      lastTick(schedule)
                    )}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}

      <h2>Webhooks</h2>
      {lists.hooks.length === 0 ? (
        <p className="hint">
          None. Make one with <code>runyard hook create NAME --workflow W</code>.
        </p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Webhooks">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Workflow</th>
                <th scope="col">Variables</th>
                <th scope="col">Delivery URL</th>
                <th scope="col">Created</th>
              </tr>
            </thead>
            <tbody>
              {lists.hooks.map((hook) => (
                <tr key={hook.id} data-hook={hook.name}>
                  <th scope="row">{hook.name}</th>
                  <td>{hook.workflow}</td>
                  <td>
                    {Object.entries(hook.vars)
                      .map(([name, path]) => `${name} = ${path}`)
                      .join(", ") || "—"}
                  </td>
                  <td>
                    <code>{hook.url}</code>
                  </td>
                  <td>{formatDate(hook.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </div>
  );
}
