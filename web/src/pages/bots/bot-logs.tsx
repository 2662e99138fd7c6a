import { useEffect, useLayoutEffect, useRef, useState } from "react";
import { answer, api } from "../../api.js";
import { ErrorNote } from "../agents/error-note.js";
import { followRun } from "../agents/follow-run.js";
import { BotLogLines, type ShownLine } from "./bot-log-lines.js";

/** At most this many lines are kept on the page: a chatty bot must not freeze the browser. */
const maxLines = 2000;

/**
 * A bot's output live: what is stored (GET /api/bots/:name/logs), then the run's `step.output`
 * events from `last_seq` on; `build` shows the build's (or pull's) output instead.
 */
export function BotLogs(props: { name: string; runId: string | null; build: boolean }) {
  const [lines, setLines] = useState<ShownLine[]>([]);
  const [error, setError] = useState<unknown>(null);
  const view = useRef<HTMLDivElement>(null);
  /** Lines added since the pane last showed them (the oldest as many may have gone at the cap). */
  const added = useRef(0);
  /**
   * Where the last line ended when lines last arrived, in the pane's content (`endOf`): the reader
   * was at the end if they still see it. Not the pane's scroll height, which is its own height
   * while its lines fill less: shortened since (a smaller window), the reader at the end would
   * have been taken for one who scrolled up.
   */
  const seenEnd = useRef(0);
  /** The part of a pixel the pane could not scroll by last time (its position is whole pixels). */
  const unscrolled = useRef(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new life of the bot (a new run) starts its logs afresh
  useEffect(() => {
    setLines([]);
    setError(null);
    added.current = 0;
    let stop: (() => void) | undefined;
    let alive = true;
    const steps = props.build ? ["build", "pull"] : ["run"];
    const add = (more: ShownLine[]) => {
      added.current += more.length;
      setLines((old) => [...old, ...more].slice(-maxLines));
    };
    const query = { tail: maxLines, ...(props.build ? { build: "true" as const } : {}) };
    answer(api.GET("/api/bots/{name}/logs", { params: { path: { name: props.name }, query } })).then(
      (logs) => {
        if (!alive) return;
        add(logs.lines);
        if (!logs.run_id) return;
        stop = followRun(logs.run_id, logs.last_seq, (event) => {
          if (event.type !== "step.output" || !steps.includes(event.step)) return;
          const { ts, stream } = event;
          add(
            event.data
              .replace(/\n$/, "")
              .split("\n")
              .map((text) => ({ ts, stream, text })),
          );
        });
      },
      (caught) => alive && setError(caught),
    );
    return () => {
      alive = false;
      stop?.();
    };
  }, [props.name, props.runId, props.build]);

  // Follow the end unless the reader scrolled up to read. Where the reader is gets read from the
  // pane as the new lines land, not from a scroll event that may come a frame later: a reader who
  // scrolls up just as a line arrives stays where they went.
  useLayoutEffect(() => {
    const pane = view.current;
    if (!pane) return;
    if (lines.length === 0) {
      seenEnd.current = 0;
      return;
    }
    const atEnd = pane.scrollTop + pane.clientHeight >= seenEnd.current - 24;
    const fresh = added.current;
    added.current = 0;
    if (atEnd) pane.scrollTop = pane.scrollHeight;
    else if (lines.length === maxLines && fresh > 0 && fresh < lines.length) {
      // At the cap the oldest lines went as new ones came: what the reader sees moved up by their
      // height, measured at the line that was last before. Measured to the fraction of a pixel, and
      // what the scroll position could not take is taken next time: a chatty bot would otherwise
      // move the reader a line every few seconds.
      const target = pane.scrollTop - (seenEnd.current - endOf(pane, pane.children.length - fresh - 1));
      pane.scrollTop = target + unscrolled.current;
      const rest = target + unscrolled.current - pane.scrollTop;
      unscrolled.current = Math.abs(rest) < 1 ? rest : 0;
    }
    seenEnd.current = endOf(pane, pane.children.length - 1);
  }, [lines]);

  return (
    <>
      <ErrorNote error={error} />
      <BotLogLines
        ref={view}
        label={props.build ? "Build output" : "Logs"}
        live
        lines={lines}
        empty={props.build ? "(no build output)" : "(no output yet)"}
      />
    </>
  );
}

/** Where row `row` of the pane ends, from the top of its content (wherever the pane is scrolled). */
function endOf(pane: HTMLElement, row: number): number {
  const box = pane.children[row]?.getBoundingClientRect();
  return box ? box.bottom - pane.getBoundingClientRect().top + pane.scrollTop : 0;
}
