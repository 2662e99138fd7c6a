import { distance } from "fastest-levenshtein";

/**
 * No guess is made for a word longer than this: no key, zone, step or host name is, and an edit
 * distance costs the product of the lengths (a 600 KB time zone against every zone took 20 s).
 */
export const maxGuessedLength = 100;
/** At most this many candidates are compared for one word: a guess among thousands helps no one. */
const maxCompared = 500;
/** A hint lists at most this many candidates, then says how many more there are. */
const maxListed = 20;

/**
 * The candidate the user most likely meant by `word`, or undefined when none is close or two
 * are equally close (a guess between two would mislead more than it helps). Its cost is bounded
 * whatever it is given (`maxGuessedLength`, `maxCompared`): candidates whose length differs by
 * more than the tolerance are never compared, as their distance is at least that difference.
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  if (word.length > maxGuessedLength) return undefined;
  const lower = word.toLowerCase();
  // Short words tolerate one slip, longer ones a slip per three characters, at most three.
  const tolerance = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  let tie = false;
  let compared = 0;
  for (const candidate of candidates) {
    if (Math.abs(candidate.length - word.length) > tolerance) continue;
    if (++compared > maxCompared) return undefined;
    const d = distance(lower, candidate.toLowerCase());
    if (d < bestDistance) {
      best = candidate;
      bestDistance = d;
      tie = false;
    } else if (d === bestDistance) {
      tie = true;
    }
  }
  return bestDistance <= tolerance && !tie ? best : undefined;
}

/** `did you mean "targets"?` when one candidate is close, else the whole list. */
export function suggestionHint(word: string, candidates: readonly string[], listName: string): string {
  const guess = didYouMean(word, candidates);
  if (guess !== undefined) return `did you mean "${guess}"?`;
  return `${listName}: ${listed(candidates)}`;
}

/** The first `maxListed` candidates, and how many more there are. */
function listed(candidates: readonly string[]): string {
  if (candidates.length <= maxListed) return candidates.join(", ");
  return `${candidates.slice(0, maxListed).join(", ")} and ${candidates.length - maxListed} more`;
}

/** `did you mean "cmd.run"? valid actions: cmd.run, shell.run`: the guess, then always the list. */
export function suggestWithList(word: string, candidates: readonly string[], listName: string): string {
  const guess = didYouMean(word, candidates);
  return `${guess !== undefined ? `did you mean "${guess}"? ` : ""}${listName}: ${listed(candidates)}`;
}
