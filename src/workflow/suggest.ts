import { distance } from "fastest-levenshtein";

/**
 * The candidate the user most likely meant by `word`, or undefined when none is close or two
 * are equally close (a guess between two would mislead more than it helps).
 */
export function didYouMean(word: string, candidates: readonly string[]): string | undefined {
  const lower = word.toLowerCase();
  // Short words tolerate one slip, longer ones a slip per three characters, at most three.
  const tolerance = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  let tie = false;
  for (const candidate of candidates) {
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
  return `${listName}: ${candidates.join(", ")}`;
}

/** `did you mean "cmd.run"? valid actions: cmd.run, shell.run`: the guess, then always the list. */
export function suggestWithList(word: string, candidates: readonly string[], listName: string): string {
  const guess = didYouMean(word, candidates);
  return `${guess !== undefined ? `did you mean "${guess}"? ` : ""}${listName}: ${candidates.join(", ")}`;
}
