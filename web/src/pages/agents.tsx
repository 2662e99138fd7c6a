/** Agents (issue 11): built next. */
export function AgentsPage(_props: { route: string[] }) {
  return <h1>Agents</h1>;
}
