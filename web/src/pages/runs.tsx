/** Runs (issue 11): built next. */
export function RunsPage(_props: { route: string[] }) {
  return <h1>Runs</h1>;
}
