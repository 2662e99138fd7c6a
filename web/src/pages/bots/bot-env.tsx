import { type FormEvent, useState } from "react";
import { answer, api, type BodyOf } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { usePoll } from "./use-poll.js";

/**
 * A bot's environment: its variables (secrets masked, never sent back to the page), one to set
 * (as a secret if ticked) and a remove button per variable. Each change restarts the bot through
 * a safe update: the old version runs until the new one is ready.
 */
export function BotEnv(props: { name: string; live: boolean; onDone: () => void }) {
  const params = { path: { name: props.name } };
  const { data, error, reload } = usePoll(() => answer(api.GET("/api/bots/{name}/env", { params })), 10_000);
  const [variable, setVariable] = useState("");
  const [value, setValue] = useState("");
  const [secret, setSecret] = useState(false);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  // The typed value leaves the form as it is sent (a secret stays on the page no longer than it
  // must, however long the safe update takes); a refused change puts it back to be corrected.
  const change = async (
    body: BodyOf<"changeBotEnv">,
    typed?: { variable: string; value: string; secret: boolean },
  ) => {
    setBusy(true);
    setFailure(null);
    setVariable("");
    setValue("");
    setSecret(false);
    try {
      await answer(api.PATCH("/api/bots/{name}/env", { params, body }));
      props.onDone();
    } catch (caught) {
      if (typed) {
        setVariable(typed.variable);
        setValue(typed.value);
        setSecret(typed.secret);
      }
      setFailure(caught);
    } finally {
      setBusy(false);
      reload();
    }
  };
  const submit = (event: FormEvent) => {
    event.preventDefault();
    void change(
      { set: { [variable]: value }, secret: secret ? [variable] : [], unset: [] },
      { variable, value, secret },
    );
  };
  return (
    <section className="section" aria-labelledby="bot-env">
      <h2 id="bot-env">Environment</h2>
      <ErrorNote error={error} />
      <table aria-label="Environment">
        <tbody>
          {(data?.env ?? []).map((entry) => (
            <tr key={entry.name}>
              <td>
                <code>{entry.name}</code>
              </td>
              <td>
                <code>{entry.value}</code>
                {entry.stored ? " (stored secret)" : entry.secret ? " (secret)" : ""}
              </td>
              <td>
                {props.live && !entry.stored ? (
                  <button
                    type="button"
                    disabled={busy}
                    aria-label={`Remove ${entry.name}`}
                    onClick={() => void change({ set: {}, secret: [], unset: [entry.name] })}
                  >
                    Remove
                  </button>
                ) : null}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {props.live ? (
        <form aria-label="Set a variable" onSubmit={submit}>
          <label>
            Name <input value={variable} onChange={(e) => setVariable(e.target.value)} required />
          </label>
          <label>
            Value{" "}
            <input
              type={secret ? "password" : "text"}
              value={value}
              onChange={(e) => setValue(e.target.value)}
              autoComplete="off"
            />
          </label>
          <label>
            <input type="checkbox" checked={secret} onChange={(e) => setSecret(e.target.checked)} /> Secret
          </label>
          <button type="submit" disabled={busy || variable === ""}>
            {busy ? "Restarting safely…" : "Set"}
          </button>
          <p className="meta">
            A change starts the bot again beside the running one; the old one stops once the new one is ready.
          </p>
        </form>
      ) : null}
      <ErrorNote error={failure} />
    </section>
  );
}
