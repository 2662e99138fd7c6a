/** One benchmark's line: what was measured, against which baseline, and the verdict. */
export interface BenchRow {
  name: string;
  measured: string;
  baseline: string;
  ratio: number;
  /** "<= 1.5" means lower is better; ">= 0.5" means higher is better. */
  target: string;
}

export function meets(row: BenchRow): boolean {
  const [op, value] = row.target.split(" ");
  const limit = Number(value);
  return op === "<=" ? row.ratio <= limit : row.ratio >= limit;
}

export function printTable(rows: BenchRow[]): void {
  const header = ["benchmark", "runyard", "baseline", "ratio", "target", "ok"];
  const body = rows.map((r) => [
    r.name,
    r.measured,
    r.baseline,
    r.ratio.toFixed(2),
    r.target,
    meets(r) ? "yes" : "NO",
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]?.length ?? 0)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of body) console.log(line(row));
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

/** Median of several runs, to damp noise on a shared 2-core machine. */
export async function median(runs: number, fn: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await fn());
  values.sort((a, b) => a - b);
  return values[Math.floor(values.length / 2)] ?? 0;
}
