import { type AnswerOf, answer, api } from "../../api.js";
import { formatDate } from "../../dates.js";
import { ErrorNote } from "../agents/error-note.js";
import { usePoll } from "./use-poll.js";

/**
 * A bot's alerts (GET /api/bots/:name/alerts): what it watches (its own, and its tenant's rules it
 * inherits or overrides), where it tells, and each time an
 * alert held (newest first, kept 7 days) with when it opened and closed and whether the notify
 * URLs were told.
 */
export function BotAlerts(props: { name: string }) {
  const { data, error } = usePoll(
    () => answer(api.GET("/api/bots/{name}/alerts", { params: { path: { name: props.name } } })),
    10_000,
  );
  return (
    <section className="section" aria-labelledby="bot-alerts">
      <h2 id="bot-alerts">Alerts</h2>
      <ErrorNote error={error} />
      {data ? (
        <>
          <p className="meta">
            {data.alerts.length === 0 && data.inherited.length === 0
              ? "No alerts: give them at start (--alert, with --notify URLs), or have your tenant's admin set rules for all its bots."
              : `Watching ${[...data.alerts.map(alertText), ...data.inherited.map((alert) => `${alertText(alert)} (inherited)`)].join(", ")}; told: ${data.notify.join(", ") || "no one"}${data.notify_inherited ? " (the tenant's)" : ""}`}
          </p>
          {data.inherited.length > 0 || data.overridden.length > 0 ? (
            <ul className="meta" aria-label="Tenant alert rules">
              {data.inherited.map((alert) => (
                <li key={`inherited-${alert.kind}`}>Inherited from the tenant: {alertText(alert)}</li>
              ))}
              {data.overridden.map((alert) => (
                <li key={`overridden-${alert.kind}`}>
                  The tenant's {alertText(alert)}: overridden by this bot's own {alert.kind} alert
                </li>
              ))}
            </ul>
          ) : null}
          {data.episodes.length > 0 ? (
            <div className="table-wrap">
              <table aria-label="Alerts">
                <thead>
                  <tr>
                    <th>Kind</th>
                    <th>What</th>
                    <th>Opened</th>
                    <th>Closed</th>
                    <th>Notified</th>
                  </tr>
                </thead>
                <tbody>
                  {data.episodes.map((episode) => (
                    <tr key={episode.id}>
                      <td>{episode.kind}</td>
                      <td>{episode.message}</td>
                      <td>{formatDate(episode.started_at)}</td>
                      <td>{episode.ended_at ? formatDate(episode.ended_at) : "still holds"}</td>
                      <td className={episode.notify_error ? "error" : undefined}>
                        {episode.notify_error
                          ? `failed: ${episode.notify_error}`
                          : episode.notified_at
                            ? formatDate(episode.notified_at)
                            : "not yet"}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          ) : data.alerts.length > 0 ? (
            <p className="meta">None has held in the last 7 days.</p>
          ) : null}
        </>
      ) : null}
    </section>
  );
}

function alertText(alert: AnswerOf<"getBotAlerts">["alerts"][number]): string {
  if (alert.kind === "memory") return `memory over ${alert.above_percent} % for ${alert.for_secs} s`;
  if (alert.kind === "restart_loop") return `${alert.restarts} restarts within ${alert.within_secs} s`;
  return alert.kind;
}
