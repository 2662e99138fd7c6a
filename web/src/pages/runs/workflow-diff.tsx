import { diffLines } from "diff";
import { useMemo } from "react";

/** A changed line as the view shows it: what it was, and whether it went or came. */
interface DiffLine {
  kind: "added" | "removed" | "same";
  text: string;
}

/** Unchanged lines kept around each change; longer stretches fold into one line saying how many. */
const context = 2;

function linesOf(before: string, after: string): DiffLine[] {
  return diffLines(before, after).flatMap((part) => {
    const kind = part.added ? "added" : part.removed ? "removed" : "same";
    const lines = part.value.replace(/\n$/, "").split("\n");
    return lines.map((text) => ({ kind, text }) as DiffLine);
  });
}

/** The lines to show: every change with `context` lines around it, the rest as folds of a count. */
function folded(lines: DiffLine[]): Array<DiffLine | { folded: number }> {
  const near = lines.map((_, at) =>
    lines.slice(Math.max(0, at - context), at + context + 1).some((line) => line.kind !== "same"),
  );
  const out: Array<DiffLine | { folded: number }> = [];
  for (const [at, line] of lines.entries()) {
    if (near[at]) out.push(line);
    else {
      const last = out.at(-1);
      if (last && "folded" in last) last.folded++;
      else out.push({ folded: 1 });
    }
  }
  return out;
}

/**
 * What an edit changed in a run's workflow, line by line: added lines green with `+`, removed
 * ones red with `-`, a few unchanged lines around each change and the rest folded.
 */
export function WorkflowDiff({ before, after }: { before: string; after: string }) {
  const lines = useMemo(() => linesOf(before, after), [before, after]);
  const added = lines.filter((line) => line.kind === "added").length;
  const removed = lines.filter((line) => line.kind === "removed").length;
  return (
    <section className="workflow-diff" aria-label="Changes to the workflow">
      <h2>
        Changes to the run's workflow{" "}
        <span className="hint">{added + removed === 0 ? "none yet" : `+${added} −${removed} lines`}</span>
      </h2>
      {added + removed > 0 && (
        <pre>
          {folded(lines).map((line, at) =>
            "folded" in line ? (
              // biome-ignore lint/suspicious/noArrayIndexKey: the lines have no identity but their place.
              <span key={at} className="diff-fold">
                {`  ⋯ ${line.folded} unchanged line${line.folded === 1 ? "" : "s"}`}
              </span>
            ) : (
              // biome-ignore lint/suspicious/noArrayIndexKey: the lines have no identity but their place.
              <span key={at} className={`diff-${line.kind}`} data-kind={line.kind}>
                {`${line.kind === "added" ? "+" : line.kind === "removed" ? "-" : " "} ${line.text}`}
              </span>
            ),
          )}
        </pre>
      )}
    </section>
  );
}
