import type { WorkflowProblem } from "./validation.js";

export type Verdict =
  | { state: "checking" }
  | { state: "valid"; name?: string }
  | { state: "invalid"; errors: WorkflowProblem[] }
  | { state: "unreachable"; message: string };

/** Under the editor: what the server's validator says, each problem with its line and column. */
export function ProblemList(props: { verdict: Verdict }) {
  const { verdict } = props;
  return (
    <div className="problems" aria-live="polite">
      {verdict.state === "checking" && <p className="hint">Checking…</p>}
      {verdict.state === "valid" && (
        <p className="status-success" data-testid="validity">
          ✓ Valid{verdict.name ? `: ${verdict.name}` : ""}
        </p>
      )}
      {verdict.state === "unreachable" && (
        <p className="error" role="alert">
          Could not check the workflow: {verdict.message}
        </p>
      )}
      {verdict.state === "invalid" && (
        <>
          <p className="error" data-testid="validity">
            {verdict.errors.length} problem{verdict.errors.length === 1 ? "" : "s"}
          </p>
          <ul aria-label="Problems">
            {verdict.errors.map((error) => (
              <li key={`${error.line}:${error.col}:${error.message}`}>
                <span className="where">
                  line {error.line}, col {error.col}
                </span>
                : {error.message}
                {error.hint && <span className="hint">hint: {error.hint}</span>}
              </li>
            ))}
          </ul>
        </>
      )}
    </div>
  );
}
