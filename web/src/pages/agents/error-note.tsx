import { ApiError } from "../../api.js";

/** An API error as a person reads it: the message, and the hint that says how to fix it. */
export function ErrorNote(props: { error: unknown }) {
  if (!props.error) return null;
  const error = props.error;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <div role="alert" className="error">
      {message}
      {error instanceof ApiError && error.hint ? <span className="hint">{error.hint}</span> : null}
    </div>
  );
}
