import { ErrorNote } from "../agents/error-note.js";
import "./bot-list.css";
import { BotActions } from "./bot-actions.js";
import { BotSparkline } from "./bot-sparkline.js";
import { type Bot, cpu, isUp, memory, uptime } from "./bot-view.js";

/**
 * Your bots: state, uptime, restarts, memory (with its last hour as a sparkline) and CPU now
 * against their limits, image; stop and remove.
 */
export function BotList(props: { bots: Bot[] | null; error: unknown; reload: () => void }) {
  const { bots, error, reload } = props;
  if (bots === null) return error ? <ErrorNote error={error} /> : <p className="loading">Loading…</p>;
  return (
    <>
      <ErrorNote error={error} />
      {bots.length === 0 ? (
        <p className="meta">No bots yet.</p>
      ) : (
        <div className="table-wrap">
          <table aria-label="Bots">
            <thead>
              <tr>
                <th>Name</th>
                <th>State</th>
                <th>Uptime</th>
                <th>Restarts</th>
                <th>Memory</th>
                <th>CPU</th>
                <th>Image</th>
                <th>
                  <span className="sr-only">Actions</span>
                </th>
              </tr>
            </thead>
            <tbody>
              {bots.map((bot) => (
                <tr key={bot.id}>
                  <td>
                    <a href={`#/bots/${encodeURIComponent(bot.name)}`}>{bot.name}</a>
                  </td>
                  <td className={`state-${bot.state}`}>{bot.state}</td>
                  <td>{uptime(bot.uptime_secs)}</td>
                  <td>{bot.restarts}</td>
                  <td className="bot-list-memory">
                    <span>
                      {memory(bot.memory_bytes)}
                      {bot.limits ? (
                        <span className="meta"> of {memory(bot.limits.memory_bytes)}</span>
                      ) : null}
                    </span>
                    {isUp(bot.state) ? (
                      <BotSparkline name={bot.name} limitBytes={bot.limits?.memory_bytes ?? null} />
                    ) : null}
                  </td>
                  <td>
                    {cpu(bot.cpu_percent)}
                    {bot.limits ? (
                      <span className="meta">
                        {" "}
                        of {bot.limits.cpus} CPU{bot.limits.cpus === 1 ? "" : "s"}
                      </span>
                    ) : null}
                  </td>
                  <td>{bot.image ?? ""}</td>
                  <td>
                    <BotActions bot={bot} onDone={reload} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
