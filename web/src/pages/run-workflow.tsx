import { useCallback, useRef, useState } from "react";
import { type ApiError, answer, api, asApiError, asSubmit } from "../api.js";
import { navigate } from "../router.js";
import { helloWorkflow } from "./run-workflow/hello.js";
import { ProblemList, type Verdict } from "./run-workflow/problem-list.js";
import { validateWorkflow } from "./run-workflow/validation.js";
import { type VarRow, VarsForm, varsOf, withDefaults } from "./run-workflow/vars-form.js";
import { YamlEditor } from "./run-workflow/yaml-editor.js";
import "./run-workflow/run-workflow.css";

/**
 * The Run workflow page: paste a workflow, see the server's validation at its line and column as you
 * type, set variables, Run (Ctrl/Cmd-Enter), then watch it on the run's page.
 */
export function RunWorkflowPage(_props: { route: string[] }) {
  const text = useRef(helloWorkflow);
  const [verdict, setVerdict] = useState<Verdict>({ state: "checking" });
  const [rows, setRows] = useState<VarRow[]>([]);
  const [submitting, setSubmitting] = useState(false);
  const [runError, setRunError] = useState<ApiError | null>(null);
  const canRun = verdict.state === "valid" && !submitting;
  const canRunRef = useRef(canRun);
  canRunRef.current = canRun;
  const rowsRef = useRef(rows);
  rowsRef.current = rows;

  const check = useCallback(async (checked: string) => {
    try {
      const result = await validateWorkflow(checked);
      // An answer for text since changed is stale: the editor asks again after the next pause.
      if (checked !== text.current) return [];
      setVerdict(
        result.ok ? { state: "valid", name: result.name } : { state: "invalid", errors: result.errors },
      );
      if (result.vars) setRows((current) => withDefaults(current, result.vars ?? {}));
      return result.errors;
    } catch (caught) {
      if (checked === text.current)
        setVerdict({
          state: "unreachable",
          message: caught instanceof Error ? caught.message : String(caught),
        });
      return [];
    }
  }, []);

  const run = useCallback(async () => {
    if (!canRunRef.current) return;
    setSubmitting(true);
    setRunError(null);
    try {
      const submitted = await answer(
        api.POST("/api/runs", {
          body: { kind: "workflow", workflow: text.current, vars: varsOf(rowsRef.current) },
          ...asSubmit,
        }),
      );
      navigate(`/runs/${encodeURIComponent(submitted.run_id)}`);
    } catch (caught) {
      setRunError(asApiError(caught));
      setSubmitting(false);
    }
  }, []);

  return (
    // Ctrl/Cmd-Enter runs from the variables too; the editor handles its own.
    // biome-ignore lint/a11y/noStaticElementInteractions: a keyboard shortcut for the whole page, not a control
    <div
      className="run-workflow"
      onKeyDown={(event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !event.defaultPrevented) {
          event.preventDefault();
          void run();
        }
      }}
    >
      <h1>Run a workflow</h1>
      <div className="run-layout">
        <section className="editor-pane" aria-label="Workflow">
          <YamlEditor
            initial={helloWorkflow}
            label="Workflow YAML"
            check={check}
            onChange={(changed) => {
              text.current = changed;
              setVerdict({ state: "checking" });
            }}
            onRun={() => void run()}
          />
          <ProblemList verdict={verdict} />
        </section>
        <aside className="run-pane">
          <VarsForm rows={rows} onChange={setRows} />
          <button type="button" className="primary run-button" disabled={!canRun} onClick={() => void run()}>
            {submitting ? "Starting…" : "Run"}
          </button>
          <p className="hint">
            <kbd>Ctrl</kbd>/<kbd>⌘</kbd> + <kbd>Enter</kbd> runs
          </p>
          {runError && (
            <p className="error" role="alert">
              {runError.message}
              {runError.hint && <span className="hint">{runError.hint}</span>}
            </p>
          )}
        </aside>
      </div>
    </div>
  );
}
