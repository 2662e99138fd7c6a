/** Bots (issue 11): built next. */
export function BotsPage(_props: { route: string[] }) {
  return <h1>Bots</h1>;
}
