import { useCallback, useEffect, useRef, useState } from "react";
import { type ApiError, answer, api, asApiError, asSubmit } from "../../api.js";
import { navigate } from "../../router.js";
import { ProblemList, type Verdict } from "../run-workflow/problem-list.js";
import { validateWorkflow, type WorkflowProblem } from "../run-workflow/validation.js";
import { newRow, type VarRow, VarsForm } from "../run-workflow/vars-form.js";
import { YamlEditor } from "../run-workflow/yaml-editor.js";
import { WorkflowDiff } from "./workflow-diff.js";
import "../run-workflow/run-workflow.css";

/** A problem the retry was refused for, at its line and column (an export nobody kept). */
function problemsOf(error: ApiError): WorkflowProblem[] {
  const details: unknown = error.details;
  if (!Array.isArray(details)) return [];
  return details.filter(isProblem);
}

function isProblem(detail: unknown): detail is WorkflowProblem {
  return (
    typeof detail === "object" &&
    detail !== null &&
    "line" in detail &&
    typeof detail.line === "number" &&
    "col" in detail &&
    typeof detail.col === "number" &&
    "message" in detail &&
    typeof detail.message === "string"
  );
}

/** The variables a retry sends: the rows changed or added, laid over the run's. */
function changedVars(rows: VarRow[]): Record<string, string> {
  return Object.fromEntries(
    rows
      .filter((row) => row.name.trim() && (row.edited || !row.fromWorkflow))
      .map((row) => [row.name.trim(), row.value]),
  );
}

/**
 * Edit and retry (`#/runs/<id>/retry?from=STEP`): the run's workflow in the editor; the retry keeps
 * the steps that succeeded before the step chosen, and runs the edited text from there on.
 */
export function RetryEditorPage({ id, from }: { id: string; from: string | null }) {
  const [loaded, setLoaded] = useState<{ workflow: string; file: string } | null>(null);
  const [steps, setSteps] = useState<string[]>([]);
  const [step, setStep] = useState(from ?? "");
  const [verdict, setVerdict] = useState<Verdict>({ state: "checking" });
  const [error, setError] = useState<ApiError | null>(null);
  const [refused, setRefused] = useState<WorkflowProblem[]>([]);
  const [submitting, setSubmitting] = useState(false);
  const [edited, setEdited] = useState("");
  const [rows, setRows] = useState<VarRow[]>([]);
  const text = useRef("");

  useEffect(() => {
    const params = { path: { id } };
    void (async () => {
      try {
        const stored = await answer(api.GET("/api/runs/{id}/workflow", { params }));
        text.current = stored.workflow;
        setEdited(stored.workflow);
        setLoaded(stored);
        const run = await answer(api.GET("/api/runs/{id}", { params }));
        setSteps([...new Set(run.graph?.steps.map((s) => s.name) ?? run.steps.map((s) => s.name))]);
        // The variables the run started with, as rows: a changed or added one is laid over them.
        setRows(Object.entries(run.inputs ?? {}).map(([name, value]) => newRow(name, value, true)));
      } catch (caught) {
        setError(asApiError(caught));
      }
    })();
  }, [id]);

  const check = useCallback(async (checked: string) => {
    const result = await validateWorkflow(checked);
    if (checked !== text.current) return [];
    setVerdict(
      result.ok ? { state: "valid", name: result.name } : { state: "invalid", errors: result.errors },
    );
    return result.errors;
  }, []);

  const retry = useCallback(async () => {
    if (!loaded) return;
    setSubmitting(true);
    setError(null);
    setRefused([]);
    const params = { path: { id } };
    try {
      const submitted = await answer(
        api.POST("/api/runs/{id}/retry", {
          params,
          body: {
            workflow: text.current,
            file: loaded.file,
            vars: changedVars(rows),
            ...(step ? { from: step } : {}),
          },
          ...asSubmit,
        }),
      );
      navigate(`/runs/${encodeURIComponent(submitted.run_id)}`);
    } catch (caught) {
      const failure = asApiError(caught);
      setError(failure);
      setRefused(problemsOf(failure));
      setSubmitting(false);
    }
  }, [loaded, step, id, rows]);

  return (
    <div className="run-workflow retry-editor">
      <p>
        <a href={`#/runs/${encodeURIComponent(id)}`}>← Run {id}</a>
      </p>
      <h1>Edit and retry</h1>
      {!loaded && !error && <p className="loading">Loading…</p>}
      {loaded && (
        <div className="run-layout">
          <section className="editor-pane" aria-label="Workflow">
            <YamlEditor
              initial={loaded.workflow}
              label="Workflow YAML"
              check={check}
              onChange={(changed) => {
                text.current = changed;
                setEdited(changed);
                setVerdict({ state: "checking" });
              }}
              onRun={() => void retry()}
            />
            <ProblemList verdict={verdict} />
            <WorkflowDiff before={loaded.workflow} after={edited} />
          </section>
          <aside className="run-pane">
            <label>
              Retry from{" "}
              <select value={step} onChange={(event) => setStep(event.target.value)} aria-label="Retry from">
                <option value="">the first step that did not succeed</option>
                {steps
                  .filter((name) => !name.startsWith("rollback: "))
                  .map((name) => (
                    <option key={name} value={name}>
                      {name}
                    </option>
                  ))}
              </select>
            </label>
            <p className="hint">The steps that succeeded before it are kept: they do not run again.</p>
            <VarsForm rows={rows} onChange={setRows} removable={(row) => !row.fromWorkflow} />
            <p className="hint">
              The run's variables, as it started: a value you change, or a variable you add, is laid over
              them; the others stay as they were.
            </p>
            <button
              type="button"
              className="primary run-button"
              disabled={submitting || verdict.state !== "valid"}
              onClick={() => void retry()}
            >
              {submitting ? "Starting…" : "Retry"}
            </button>
          </aside>
        </div>
      )}
      {error && (
        <div className="error" role="alert">
          {error.message.split("\n")[0]}
          {error.hint && <span className="hint"> {error.hint}</span>}
          {refused.length > 0 && (
            <ul aria-label="Refused">
              {refused.map((problem) => (
                <li key={`${problem.line}:${problem.col}:${problem.message}`}>
                  line {problem.line}, col {problem.col}: {problem.message}
                  {problem.hint && <span className="hint"> hint: {problem.hint}</span>}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </div>
  );
}
