import { useState } from "react";
import { api } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { type Bot, liveStates } from "./bot-view.js";

/** Stop (while it has a container) and remove; `onDone` reloads whoever shows the bot, `onRemoved` leaves its page. */
export function BotActions(props: { bot: Bot; onDone: () => void; onRemoved?: () => void }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const path = `/api/bots/${encodeURIComponent(props.bot.name)}`;
  const act = async (method: string, url: string) => {
    setBusy(true);
    setError(null);
    try {
      await api(method, url);
      if (method === "DELETE" && props.onRemoved) props.onRemoved();
      else props.onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const live = liveStates.includes(props.bot.state);
  return (
    <span className="actions">
      {live ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => act("POST", `${path}/stop`)}
          aria-label={`Stop ${props.bot.name}`}
        >
          Stop
        </button>
      ) : null}
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          if (window.confirm(`Remove bot ${props.bot.name}?`)) void act("DELETE", path);
        }}
        aria-label={`Remove ${props.bot.name}`}
      >
        Remove
      </button>
      <ErrorNote error={error} />
    </span>
  );
}
