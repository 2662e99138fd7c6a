/**
 * The one way the UI writes dollars: four decimals, as an agent run's page shows a turn's cost, so
 * a cent's fraction of a cheap run reads the same on the run's page and on the Usage page.
 */
export function usd(value: number): string {
  return `$${value.toFixed(4)}`;
}
