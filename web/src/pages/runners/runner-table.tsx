import { formatDate } from "../../dates.js";
import type { Runner } from "./use-runners.js";

function when(iso: string | null): string {
  return formatDate(iso) || "—";
}

/** The ADOS runners list's columns: id, group, status, hostname, cpus, memory, connected_at, labels, running jobs. */
export function RunnerTable(props: { runners: Runner[] }) {
  return (
    <div className="table-wrap">
      <table aria-label="Runners">
        <thead>
          <tr>
            <th scope="col">ID</th>
            <th scope="col">Group</th>
            <th scope="col">Status</th>
            <th scope="col">Hostname</th>
            <th scope="col">CPUs</th>
            <th scope="col">Memory</th>
            <th scope="col">Connected at</th>
            <th scope="col">Labels</th>
            <th scope="col">Running jobs</th>
          </tr>
        </thead>
        <tbody>
          {props.runners.map((runner) => (
            <tr key={runner.id} data-runner={runner.id}>
              <th scope="row">{runner.id}</th>
              <td>{runner.group}</td>
              <td>
                <span
                  className={`runner-status ${runner.status === "connected" ? "status-online" : "status-offline"}`}
                  data-status={runner.status}
                >
                  {runner.status}
                  {runner.status === "connected" ? ` · ${runner.state}` : ""}
                </span>
              </td>
              <td>{runner.hostname}</td>
              <td>{runner.cpus ?? "—"}</td>
              <td>{runner.memory ?? "—"}</td>
              <td>
                <time dateTime={runner.connected_at ?? undefined}>{when(runner.connected_at)}</time>
              </td>
              <td className="labels">
                {runner.labels.length === 0
                  ? "—"
                  : runner.labels.map((label) => (
                      <span className="label" key={label}>
                        {label}
                      </span>
                    ))}
              </td>
              <td title={runner.running_jobs.join("\n")}>
                {runner.running_jobs.length} / {runner.capacity}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
