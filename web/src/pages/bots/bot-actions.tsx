import { useState } from "react";
import { answer, api } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { type Bot, isLive } from "./bot-view.js";

/** Stop (while it has a container) and remove; `onDone` reloads whoever shows the bot, `onRemoved` leaves its page. */
export function BotActions(props: {
  bot: Pick<Bot, "name" | "state">;
  onDone: () => void;
  onRemoved?: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const params = { path: { name: props.bot.name } };
  const act = async (action: "stop" | "remove") => {
    setBusy(true);
    setError(null);
    try {
      if (action === "stop") await answer(api.POST("/api/bots/{name}/stop", { params }));
      else await answer(api.DELETE("/api/bots/{name}", { params }));
      if (action === "remove" && props.onRemoved) props.onRemoved();
      else props.onDone();
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };
  const live = isLive(props.bot.state);
  return (
    <span className="actions">
      {live ? (
        <button
          type="button"
          disabled={busy}
          onClick={() => act("stop")}
          aria-label={`Stop ${props.bot.name}`}
        >
          Stop
        </button>
      ) : null}
      <button
        type="button"
        disabled={busy}
        onClick={() => {
          if (window.confirm(`Remove bot ${props.bot.name}?`)) void act("remove");
        }}
        aria-label={`Remove ${props.bot.name}`}
      >
        Remove
      </button>
      <ErrorNote error={error} />
    </span>
  );
}
