import { useEffect, useState } from "react";
import { type AnswerOf, answer, api, asApiError } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";

type Webhook = AnswerOf<"getBotWebhook">;

/**
 * Where a bot takes inbound webhooks (GET /api/bots/:name/webhook), for those the API shows it
 * to: the URL with its secret masked, a button to show it and one to copy it. A bot without
 * `--webhook` (or a reader the API refuses) shows nothing.
 */
export function BotWebhook(props: { name: string }) {
  const [hook, setHook] = useState<Webhook | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [shown, setShown] = useState(false);
  const [copied, setCopied] = useState<string | null>(null);

  useEffect(() => {
    let alive = true;
    answer(api.GET("/api/bots/{name}/webhook", { params: { path: { name: props.name } } })).then(
      (got) => alive && setHook(got),
      (caught) => {
        const status = asApiError(caught).status;
        if (alive && status !== 404 && status !== 403) setError(caught);
      },
    );
    return () => {
      alive = false;
    };
  }, [props.name]);

  if (!hook) return error ? <ErrorNote error={error} /> : null;
  const url = `${window.location.origin}${hook.path}`;
  const masked = `${window.location.origin}${hook.path.slice(0, hook.path.length - hook.secret.length)}${"•".repeat(8)}`;
  const copy = async (text: string, what: string) => {
    try {
      await navigator.clipboard.writeText(text);
      setCopied(`${what} copied`);
    } catch {
      setShown(true);
      setCopied("copying is not allowed here: select the URL and copy it");
    }
  };
  return (
    <section className="section" aria-labelledby="bot-webhook">
      <h2 id="bot-webhook">Webhook</h2>
      <p className="meta">
        POSTs here go to port {hook.port} in the bot's container; the last part of the URL is its secret (or
        send it in the x-runyard-hook-secret header).
      </p>
      <p className="bot-webhook-url">
        <code data-testid="bot-webhook-url">{shown ? url : masked}</code>
      </p>
      <p className="actions">
        <button type="button" onClick={() => setShown(!shown)}>
          {shown ? "Hide secret" : "Show secret"}
        </button>
        <button type="button" onClick={() => void copy(url, "URL")}>
          Copy URL
        </button>
        <button type="button" onClick={() => void copy(hook.secret, "Secret")}>
          Copy secret
        </button>
        {copied ? (
          <span role="status" className="meta">
            {copied}
          </span>
        ) : null}
      </p>
    </section>
  );
}
