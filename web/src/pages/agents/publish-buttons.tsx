import { useState } from "react";
import { answer, api, asSubmit } from "../../api.js";
import { navigate } from "../../router.js";
import { ErrorNote } from "./error-note.js";

/**
 * "Push" and "Open pull request" for a run whose task did not push: each queues the run that
 * publishes the branch (asked twice, the server answers the first ask's run) and opens its page.
 */
export function PublishButtons(props: { runId: string }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const publish = async (what: "push" | "pull-request") => {
    setBusy(true);
    setError(null);
    try {
      const params = { params: { path: { id: props.runId } }, ...asSubmit };
      const run = await answer(
        what === "push"
          ? api.POST("/api/runs/{id}/push", params)
          : api.POST("/api/runs/{id}/pull-request", params),
      );
      navigate(`/agents/${encodeURIComponent(run.run_id)}`);
    } catch (caught) {
      setError(caught);
      setBusy(false);
    }
  };
  return (
    <div className="actions publish-actions">
      <button type="button" disabled={busy} onClick={() => publish("push")}>
        Push branch
      </button>
      <button type="button" disabled={busy} onClick={() => publish("pull-request")}>
        Open pull request
      </button>
      <span className="meta">The task did not push: its branch is still only on the runner.</span>
      <ErrorNote error={error} />
    </div>
  );
}
