/** Run a workflow (issue 11): built next. */
export function RunWorkflowPage(_props: { route: string[] }) {
  return <h1>Run a workflow</h1>;
}
