/** Runners (issue 11): built next. */
export function RunnersPage(_props: { route: string[] }) {
  return <h1>Runners</h1>;
}
