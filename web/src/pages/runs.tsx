import { lazy } from "react";
import "./runs/runs.css";
import { RunListPage } from "./runs/run-list.js";

// The run page brings xterm.js: loaded only when a run is opened, not with the list.
const RunPage = lazy(() => import("./runs/run-page.js").then((m) => ({ default: m.RunPage })));

/** Runs (issue 11): `#/runs` lists them, `#/runs/<id>` shows one live. */
export function RunsPage({ route }: { route: string[] }) {
  const id = route[0];
  return id ? <RunPage key={id} id={id} /> : <RunListPage />;
}
