/** One benchmark's line: what was measured, against which baseline, and the verdict. */
export interface BenchRow {
  name: string;
  measured: string;
  baseline: string;
  ratio: number;
  /**
   * The same scenario measured inside the bench process (no process start, no CLI), where one
   * exists: printed beside the whole-process figure, so a gap between them shows start-up cost.
   */
  inProcess?: string;
  /** "<= 1.5" means lower is better; ">= 0.5" means higher is better. */
  target: string;
  /** How it was measured, printed once under the table and referred to by number. */
  note?: string;
}

/** A benchmark that could not run here, and why: printed under the table instead of rows. */
export interface BenchSkip {
  skipped: string;
}

export type BenchResult = BenchRow | BenchSkip;

export function isSkip(result: BenchResult): result is BenchSkip {
  return "skipped" in result;
}

export function meets(row: BenchRow): boolean {
  const [op, value] = row.target.split(" ");
  const limit = Number(value);
  return op === "<=" ? row.ratio <= limit : row.ratio >= limit;
}

export function printTable(results: BenchResult[]): void {
  const rows = results.filter((r): r is BenchRow => !isSkip(r));
  const notes = [...new Set(rows.flatMap((r) => (r.note ? [r.note] : [])))];
  const header = ["benchmark", "runyard", "in-process", "baseline", "ratio", "target", "ok"];
  const body = rows.map((r) => [
    r.note ? `${r.name} [${notes.indexOf(r.note) + 1}]` : r.name,
    r.measured,
    r.inProcess ?? "",
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
  for (const [i, note] of notes.entries()) console.log(`[${i + 1}] ${note}`);
  for (const result of results) if (isSkip(result)) console.log(`skipped: ${result.skipped}`);
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
