import { type FormEvent, useState } from "react";
import { type AnswerOf, answer, api } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { BotLogLines } from "./bot-log-lines.js";

/** The answer to a search, with the text it searched for (marked in its lines). */
type Found = AnswerOf<"getBotLogs"> & { needle: string };

/** The spans to search back over; the whole log is the download. */
const sinceChoices = [
  ["15m", "15 minutes"],
  ["1h", "hour"],
  ["2h", "2 hours"],
  ["24h", "day"],
  ["", "all kept"],
] as const;

const sinceMs: Record<string, number> = {
  "15m": 900_000,
  "1h": 3_600_000,
  "2h": 7_200_000,
  "24h": 86_400_000,
};

/**
 * Searches a bot's stored output (GET /api/bots/:name/logs?grep=&since=), any case, secrets
 * masked; and saves the whole log its runner keeps (GET /api/bots/:name/logs/download).
 */
export function BotLogSearch(props: { name: string }) {
  const [text, setText] = useState("");
  const [since, setSince] = useState("1h");
  const [found, setFound] = useState<Found | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [busy, setBusy] = useState(false);

  const search = async (event: FormEvent) => {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const query = {
        tail: 2000,
        ...(text ? { grep: text } : {}),
        ...(since ? { since: new Date(Date.now() - sinceMs[since]!).toISOString() } : {}),
      };
      const logs = await answer(
        api.GET("/api/bots/{name}/logs", { params: { path: { name: props.name }, query } }),
      );
      setFound({ ...logs, needle: text });
    } catch (caught) {
      setError(caught);
    } finally {
      setBusy(false);
    }
  };

  // A download needs the Bearer header, so the button fetches the log and saves it.
  const download = async () => {
    setError(null);
    try {
      const log = await answer(
        api.GET("/api/bots/{name}/logs/download", {
          params: { path: { name: props.name } },
          parseAs: "text",
        }),
      );
      const url = URL.createObjectURL(new Blob([log], { type: "text/plain" }));
      const link = document.createElement("a");
      link.href = url;
      link.download = `${props.name}.log`;
      link.click();
      URL.revokeObjectURL(url);
    } catch (caught) {
      setError(caught);
    }
  };

  return (
    <section className="section" aria-labelledby="bot-log-search">
      <h2 id="bot-log-search">Search the logs</h2>
      <form className="bot-log-search" aria-label="Search the logs" onSubmit={search}>
        <label>
          Text
          <input type="search" value={text} maxLength={200} onChange={(e) => setText(e.target.value)} />
        </label>
        <label>
          Since
          <select value={since} onChange={(e) => setSince(e.target.value)}>
            {sinceChoices.map(([value, label]) => (
              <option key={value} value={value}>
                {value ? `the last ${label}` : label}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy}>
          Search
        </button>
        <button type="button" className="link" onClick={() => void download()}>
          Download whole log
        </button>
      </form>
      <ErrorNote error={error} />
      {found ? (
        <>
          <p className="meta" data-testid="bot-log-found">
            {found.lines.length === 0
              ? "No line matches."
              : `${found.lines.length} line${found.lines.length === 1 ? "" : "s"}${found.lines.length >= 2000 ? " (the last 2000)" : ""}`}
          </p>
          {found.lines.length > 0 ? (
            <BotLogLines label="Found lines" lines={found.lines} empty="" highlight={found.needle} />
          ) : null}
        </>
      ) : null}
    </section>
  );
}
