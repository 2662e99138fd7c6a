import { useEffect, useState } from "react";
import { answer, api, type Schema } from "../api.js";
import { navigate, routeQuery } from "../router.js";
import { usd } from "../usd.js";
import { DailySpendChart } from "./usage/daily-spend-chart.js";
import { useDailyBudget } from "./usage/use-daily-budget.js";
import "./usage/usage.css";

type UsageReport = Schema<"UsageReport">;
type Grouping = UsageReport["by"];

const groupings: ReadonlyArray<readonly [Grouping, string]> = [
  ["user", "User"],
  ["agent", "Agent"],
  ["model", "Model"],
];
const windows = [
  ["7d", "7 days"],
  ["30d", "30 days"],
  ["90d", "90 days"],
] as const;

/**
 * Agents' spend: a bar per UTC day (stacked by the grouping, under the tenant's daily budget) and
 * a table per user, agent or model. The server answers a
 * member their own tenant's figures only; the page asks for nothing it could not see.
 */
export function UsagePage(_props: { route: string[] }) {
  const query = routeQuery();
  const by: Grouping = groupings.find(([key]) => key === query.get("by"))?.[0] ?? "user";
  const since = windows.find(([key]) => key === query.get("since"))?.[0] ?? "30d";
  // The report with the grouping it was asked for: until a new grouping's answer comes, the table
  // goes on showing the last one under its own name ("Spend per user"), never the last rows
  // under the new name.
  const [shown, setShown] = useState<{ by: Grouping; report: UsageReport } | undefined>(undefined);
  const report = shown?.report;
  const [error, setError] = useState<string | null>(null);
  const budgetPerDay = useDailyBudget(report?.tenant);

  useEffect(() => {
    let stopped = false;
    setError(null);
    answer(api.GET("/api/usage", { params: { query: { by, since } } })).then(
      (answered) => {
        if (!stopped) setShown({ by, report: answered });
      },
      (caught: unknown) => {
        if (!stopped) setError(caught instanceof Error ? caught.message : String(caught));
      },
    );
    return () => {
      stopped = true;
    };
  }, [by, since]);

  const choose = (next: { by?: Grouping; since?: string }) =>
    navigate(`/usage?by=${next.by ?? by}&since=${next.since ?? since}`);

  return (
    <div className="usage">
      <h1>Usage</h1>
      <p className="hint">
        Agents' spend, from the usage each model call reported: its cost, else the model's list price.
        {report
          ? ` ${report.tenant === null ? "Every tenant." : report.tenant ? `Tenant ${report.tenant}.` : ""}`
          : ""}
      </p>
      <div className="usage-controls">
        <fieldset>
          <legend>Window</legend>
          {windows.map(([key, label]) => (
            <button
              key={key}
              type="button"
              aria-pressed={since === key}
              onClick={() => choose({ since: key })}
            >
              {label}
            </button>
          ))}
        </fieldset>
        <fieldset>
          <legend>Group by</legend>
          {groupings.map(([key, label]) => (
            <button key={key} type="button" aria-pressed={by === key} onClick={() => choose({ by: key })}>
              {label}
            </button>
          ))}
        </fieldset>
      </div>
      {error && (
        <p className="error" role="alert">
          Could not read the usage: {error}
        </p>
      )}
      {report === undefined ? (
        !error && <p className="loading">Loading…</p>
      ) : (
        <>
          <section className="usage-total" aria-label="Total">
            <strong>{usd(report.total.usd)}</strong> spent · {report.total.input_tokens.toLocaleString("en")}{" "}
            input and {report.total.output_tokens.toLocaleString("en")} output tokens · {report.total.calls}{" "}
            model calls
          </section>
          <DailySpendChart
            days={report.days}
            keys={report.rows.map((row) => row.key)}
            grouping={groupings.find(([key]) => key === shown?.by)?.[1].toLowerCase() ?? "user"}
            budgetPerDay={budgetPerDay}
          />
          {report.rows.length === 0 ? (
            <p className="empty">No agent spent anything in this window.</p>
          ) : (
            <div className="table-wrap">
              <table aria-label={`Spend per ${shown?.by}`}>
                <thead>
                  <tr>
                    <th scope="col">{groupings.find(([key]) => key === shown?.by)?.[1]}</th>
                    <th scope="col">Spend</th>
                    <th scope="col">Input tokens</th>
                    <th scope="col">Output tokens</th>
                    <th scope="col">Calls</th>
                  </tr>
                </thead>
                <tbody>
                  {report.rows.map((row) => (
                    <tr key={row.key}>
                      <td>{row.key}</td>
                      <td>{usd(row.usd)}</td>
                      <td>{row.input_tokens.toLocaleString("en")}</td>
                      <td>{row.output_tokens.toLocaleString("en")}</td>
                      <td>{row.calls}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          {report.unknown_cost_tokens > 0 && (
            <p className="hint">
              {report.unknown_cost_tokens.toLocaleString("en")} tokens of models with no reported cost and no
              list price are counted as $0.
            </p>
          )}
        </>
      )}
    </div>
  );
}
