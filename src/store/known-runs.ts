/**
 * PostgreSQL: a run's seq and log state as this process last wrote them (its run created, a batch
 * appended), so that the next batch can be tried in one statement that checks them against the
 * row (append-run-events.ts, `appendKnown`). A guess, never trusted: another writer (a replica, a
 * runner's batch stored by another process) makes the check fail, and the batch goes the usual
 * way. Only states with nothing cut are kept: a cut log carries its notices owed in the row.
 */
export interface KnownRun {
  lastSeq: number;
  logBytes: number;
  /** The recorded cap (`log_max_bytes`): a run whose cap is not yet recorded is not kept. */
  maxBytes: number;
  rolling: boolean;
  /**
   * Batches in a row whose one statement found the row changed by another writer (a run whose
   * runner's batches another replica stores): past `maxMisses` none is tried for the run.
   */
  misses?: number;
}

/** Failed tries in a row after which a run's batches go the usual way only. */
export const maxMisses = 2;

/** Runs kept at most: the newest written, as a process carries a few hundred at once. */
const keptRuns = 4096;

const known = new Map<string, KnownRun>();

export function knownRun(runId: string): KnownRun | undefined {
  return known.get(runId);
}

/** What the run's row holds now, after this process wrote it; undefined forgets it. */
export function rememberRun(runId: string, state: KnownRun | undefined): void {
  known.delete(runId);
  if (state === undefined) return;
  known.set(runId, state);
  if (known.size > keptRuns) known.delete(known.keys().next().value!);
}
