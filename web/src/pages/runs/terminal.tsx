import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import { linesOf, maxLines, type OutputWindow } from "./output-window.js";
import type { RunEvent } from "./types.js";

/** `all`, or one step on one host (`step@host`). */
export type StepFilter = string;
export const stepKey = (event: { step?: string; host?: string }): string => `${event.step}@${event.host}`;

/**
 * The run's output in xterm.js (ANSI colours as the step printed them). Writes are gathered
 * and handed to xterm once per animation frame, so output arriving fast costs one write per
 * frame and the page stays responsive.
 */
export function RunTerminal({
  output,
  filter,
  live,
}: {
  output: OutputWindow;
  filter: StepFilter;
  live: boolean;
}) {
  const host = useRef<HTMLElement>(null);
  const [, setVersion] = useState(0);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    const element = host.current!;
    const term = new Terminal({
      convertEol: true,
      disableStdin: true,
      scrollback: maxLines * 2,
      fontSize: 13,
      theme: { background: "#111318" },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(element);
    fit.fit();
    // Tests (and devtools) read what the terminal holds through its element.
    (element as HTMLElement & { terminal?: Terminal }).terminal = term;
    const shown = (event: RunEvent) => filter === "all" || stepKey(event) === filter;
    let pending: string[] = [];
    let frame = 0;
    const write = (texts: string[]) => {
      pending.push(...texts);
      if (frame) return;
      frame = requestAnimationFrame(() => {
        frame = 0;
        const text = pending.join("");
        pending = [];
        if (text) term.write(text);
      });
    };
    output.onReset = (anchor) => {
      cancelAnimationFrame(frame);
      frame = 0;
      pending = [];
      term.reset();
      const events = output.events.filter(shown);
      if (anchor === undefined) write(events.map((event) => event.data ?? ""));
      else {
        // Paged back: show where the older output meets what was shown, not the window's end.
        const above = events.filter((event) => event.seq < anchor);
        const lines = above.reduce((sum, event) => sum + linesOf(event.data ?? ""), 0);
        term.write(events.map((event) => event.data ?? "").join(""), () =>
          term.scrollToLine(Math.max(0, lines - Math.floor(term.rows / 2))),
        );
      }
      setVersion((version) => version + 1);
    };
    output.onAppend = (events) => write(events.filter(shown).map((event) => event.data ?? ""));
    output.onReset();
    const resized = () => fit.fit();
    window.addEventListener("resize", resized);
    return () => {
      window.removeEventListener("resize", resized);
      cancelAnimationFrame(frame);
      output.onReset = () => {};
      output.onAppend = () => {};
      term.dispose();
    };
  }, [output, filter]);

  const older = async () => {
    setBusy(true);
    try {
      await output.loadOlder();
    } finally {
      setBusy(false);
    }
  };
  const latest = async () => {
    setBusy(true);
    try {
      await output.loadTail();
    } finally {
      setBusy(false);
    }
  };

  return (
    <div className="run-terminal">
      <div className="run-terminal-bar">
        {output.moreBefore && (
          <button type="button" onClick={older} disabled={busy}>
            Load older output
          </button>
        )}
        {!output.atLive && (
          <button type="button" onClick={latest} disabled={busy}>
            {live ? "Follow live output" : "Show the newest output"}
          </button>
        )}
      </div>
      <section ref={host} className="run-terminal-screen" data-testid="terminal" aria-label="Run output" />
    </div>
  );
}
