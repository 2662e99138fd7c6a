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
  /** The pane's height when lines last arrived: the reader was at the end if they still see it. */
  const seenHeight = useRef(0);

  // biome-ignore lint/correctness/useExhaustiveDependencies: a new life of the bot (a new run) starts its logs afresh
  useEffect(() => {
    setLines([]);
    setError(null);
    let stop: (() => void) | undefined;
    let alive = true;
    const steps = props.build ? ["build", "pull"] : ["run"];
    const add = (more: ShownLine[]) => setLines((old) => [...old, ...more].slice(-maxLines));
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
      seenHeight.current = 0;
      return;
    }
    const atEnd = pane.scrollTop + pane.clientHeight >= seenHeight.current - 24;
    if (atEnd) pane.scrollTop = pane.scrollHeight;
    seenHeight.current = pane.scrollHeight;
  }, [lines]);

  return (
    <>
      <ErrorNote error={error} />
      <BotLogLines
        ref={view}
        label={props.build ? "Build output" : "Logs"}
        lines={lines}
        empty={props.build ? "(no build output)" : "(no output yet)"}
      />
    </>
  );
}
