/**
 * A member's race against a check of a folder: one step swaps a folder for a link to a victim as
 * fast as it can while other steps of the run (the racers) make their attempts through the path.
 * The swapper stops when the racers' attempts are over, not after a fixed time: a step that depends
 * on every racer makes `racersDone` in the swapper's folder, which the swapper looks for between its
 * swaps. A clock bound the old swapper, which burned a core for seconds after the racers had ended
 * on a quiet machine, and on a busy one could stop before the last racer started.
 */

/** The file the racers' last step makes in the swapper's folder when every attempt is over. */
export const racersDone = "racers-done";

/** The file the swapper makes in its folder once it swaps: the racers' gate waits on it. */
export const swapperReady = "swapper-ready";

/** A step's script that ends once the swapper has begun (it made `swapper-ready` in its folder). */
export const gateScript = `while [ ! -e ${swapperReady} ]; do sleep 0.01; done`;

/** A step's script that tells the swapper the racers are done. */
export const doneScript = `touch ${racersDone}`;

/**
 * A step's command that exchanges `dir` with `link` (renameat2 RENAME_EXCHANGE, atomic) as fast as
 * it can, after making `swapper-ready` in its folder, until `racers-done` appears there (looked
 * for every 256 swaps, a few milliseconds); `limitSeconds` only ends a run whose racers never
 * signal. It prints `swaps=N`. The arguments are shell words.
 */
export function swapUntilDone(dir: string, link: string, limitSeconds = 120): string {
  const swap = [
    "use strict;",
    "my ($dir, $link, $done, $limit) = @ARGV;",
    "my $end = time + $limit; my $swaps = 0;",
    `open(my $ready, ">", "${swapperReady}"); close($ready);`,
    "until (-e $done || time > $end) {",
    "for (1 .. 256) { $swaps++ if syscall(316, -100, $dir, -100, $link, 2) == 0; }",
    "}",
    'print "swaps=$swaps\\n";',
  ].join(" ");
  return `perl -e '${swap}' ${dir} ${link} ${racersDone} ${limitSeconds}`;
}
