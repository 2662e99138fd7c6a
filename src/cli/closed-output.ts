/**
 * What the CLI does when the reader of its standard output goes away (`runyard ... | head -2`).
 * Most commands only show something, and end quietly. A local run is doing work: stopping it
 * halfway because a pager closed would leave a deploy half done, so it goes on to its end with
 * its output dropped, and its exit code still tells how it ended.
 */
let finishFirst = false;

/** Called by a command whose work must not stop with its output (a local `runyard run`). */
export function finishWhenOutputCloses(): void {
  finishFirst = true;
}

/** The handler for EPIPE on stdout. */
export function outputClosed(stderr: (s: string) => void): void {
  if (!finishFirst) process.exit(0);
  process.stdout.write = () => true;
  stderr(
    "note: the output was closed; the run goes on to its end without printing (its exit code tells how it ended)\n",
  );
}
