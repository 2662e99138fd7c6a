import { ErrorNote } from "../agents/error-note.js";
import { BotActions } from "./bot-actions.js";
import { type Bot, cpu, memory, uptime } from "./bot-view.js";

/** Your bots: state, uptime, restarts, memory and CPU now, image; stop and remove. */
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
                  <td>{memory(bot.memory_bytes)}</td>
                  <td>{cpu(bot.cpu_percent)}</td>
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
