import { type FormEvent, useRef, useState } from "react";
import { type AnswerOf, answer, api, type BodyOf } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { usePoll } from "./use-poll.js";

/**
 * A bot's environment: its variables (secrets masked, never sent back to the page), each with
 * edit (into the form) and remove; the form sets one (as a secret if ticked), and says why it
 * cannot when it cannot. Each change restarts the bot through a safe update: the old version
 * runs until the new one is ready.
 */
export function BotEnv(props: { name: string; live: boolean; onDone: () => void }) {
  const params = { path: { name: props.name } };
  const { data, error, reload } = usePoll(() => answer(api.GET("/api/bots/{name}/env", { params })), 10_000);
  const [variable, setVariable] = useState("");
  const [value, setValue] = useState("");
  const [secret, setSecret] = useState(false);
  const [busy, setBusy] = useState(false);
  const [failure, setFailure] = useState<unknown>(null);
  const valueInput = useRef<HTMLInputElement>(null);
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
  // Edit puts a variable in the form: its value when it is plain, none for a secret (never sent back).
  const edit = (entry: AnswerOf<"getBotEnv">["env"][number]) => {
    setVariable(entry.name);
    setValue(entry.secret ? "" : entry.value);
    setSecret(entry.secret);
    valueInput.current?.focus();
  };
  const why = !props.live
    ? "The bot is not running: start it to change its environment."
    : busy
      ? "A change is under way: the bot is starting again with it."
      : null;
  return (
    <section className="section" aria-labelledby="bot-env">
      <h2 id="bot-env">Environment</h2>
      <ErrorNote error={error} />
      <div className="table-wrap">
        <table aria-label="Environment" className="bot-env-table bot-stack">
          <thead>
            <tr>
              <th>Name</th>
              <th>Value</th>
              <th>
                <span className="sr-only">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {data && data.env.length === 0 ? (
              <tr>
                <td colSpan={3} className="meta">
                  No variables yet.
                </td>
              </tr>
            ) : null}
            {(data?.env ?? []).map((entry) => (
              <tr key={entry.name}>
                <td data-label="Name">
                  <code>{entry.name}</code>
                </td>
                <td data-label="Value">
                  <code>{entry.value}</code>
                  {entry.stored ? " (stored secret)" : entry.secret ? " (secret)" : ""}
                </td>
                <td data-label="Actions">
                  {entry.stored ? (
                    <span className="meta">kept with the tenant's secrets</span>
                  ) : (
                    <div className="bot-env-actions">
                      <button
                        type="button"
                        disabled={why !== null}
                        aria-label={`Edit ${entry.name}`}
                        onClick={() => edit(entry)}
                      >
                        Edit
                      </button>
                      <button
                        type="button"
                        disabled={why !== null}
                        aria-label={`Remove ${entry.name}`}
                        onClick={() => void change({ set: {}, secret: [], unset: [entry.name] })}
                      >
                        Remove
                      </button>
                    </div>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <form className="bot-env-form" aria-label="Set a variable" onSubmit={submit}>
        <label>
          Name
          <input
            value={variable}
            onChange={(e) => setVariable(e.target.value)}
            required
            pattern="[A-Za-z_][A-Za-z0-9_]*"
            title="Letters, digits and _, not starting with a digit"
            autoComplete="off"
            disabled={!props.live}
          />
        </label>
        <label>
          Value
          <input
            ref={valueInput}
            type={secret ? "password" : "text"}
            value={value}
            onChange={(e) => setValue(e.target.value)}
            placeholder={secret ? "a new value" : ""}
            autoComplete="off"
            disabled={!props.live}
          />
        </label>
        <label className="bot-env-secret">
          <input
            type="checkbox"
            checked={secret}
            onChange={(e) => setSecret(e.target.checked)}
            disabled={!props.live}
          />{" "}
          Secret
        </label>
        <button type="submit" className="primary" disabled={why !== null} aria-describedby="bot-env-why">
          {busy ? "Restarting safely…" : "Set"}
        </button>
      </form>
      <p className="meta" id="bot-env-why">
        {why ??
          "A change starts the bot again beside the running one; the old one stops once the new one is ready."}
      </p>
      <ErrorNote error={failure} />
    </section>
  );
}
