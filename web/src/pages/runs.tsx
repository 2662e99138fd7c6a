import { lazy } from "react";
import "./runs/runs.css";
import { routeQuery } from "../router.js";
import { RunListPage } from "./runs/run-list.js";

// The run page brings xterm.js: loaded only when a run is opened, not with the list.
const RunPage = lazy(() => import("./runs/run-page.js").then((m) => ({ default: m.RunPage })));
// The editor brings CodeMirror: loaded only for "Edit and retry".
const RetryEditorPage = lazy(() =>
  import("./runs/retry-editor.js").then((m) => ({ default: m.RetryEditorPage })),
);

/** Runs: `#/runs` lists them, `#/runs/<id>` shows one live, `#/runs/<id>/retry` edits and retries it. */
export function RunsPage({ route }: { route: string[] }) {
  const id = route[0];
  if (id && route[1] === "retry") return <RetryEditorPage key={id} id={id} from={routeQuery().get("from")} />;
  return id ? <RunPage key={id} id={id} /> : <RunListPage />;
}
