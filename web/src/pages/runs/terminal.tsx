import { FitAddon } from "@xterm/addon-fit";
import { Terminal } from "@xterm/xterm";
import "@xterm/xterm/css/xterm.css";
import { useEffect, useRef, useState } from "react";
import type { EventOf } from "../../../../src/core/events.js";
import { printable, TerminalOutput } from "../../../../src/core/terminal-text.js";
import { linesOf, maxLines, type OutputWindow } from "./output-window.js";

/** `all`, or one step on one host (`step@host`). */
export type StepFilter = string;
export const stepKey = (event: { step?: string; host?: string }): string => `${event.step}@${event.host}`;

const bold = "\x1b[1m";
const cyan = "\x1b[36m";
const red = "\x1b[31m";
const plain = "\x1b[0m";
/** The terminal never gets shorter than this: below it, the page scrolls to it instead. */
const minHeightPx = 240;
/** Room left under the terminal, inside the window. */
const bottomGapPx = 8;

/**
 * Turns output events into terminal text: in the all-steps view a header line wherever another
 * step's output starts (steps on several hosts interleave), and stderr in red in every view.
 * What a step printed keeps its colours and loses every other escape sequence (a title, the
 * clipboard, a hyperlink, cursor movement over earlier output), as the CLI prints it; step and
 * host names in headers are plain text.
 */
export class OutputPainter {
  private lastKey: string | undefined;
  private atLineStart = true;
  /** One filter per step, host and stream: a sequence split across two events is judged whole. */
  private readonly filters = new Map<string, TerminalOutput>();

  constructor(private readonly headers: boolean) {}

  paint(events: EventOf<"step.output">[]): string {
    let text = "";
    for (const event of events) {
      if (!event.data) continue;
      const key = stepKey(event);
      const filterKey = `${key}\u0000${event.stream}`;
      let filter = this.filters.get(filterKey);
      if (!filter) {
        filter = new TerminalOutput();
        this.filters.set(filterKey, filter);
      }
      const data = filter.push(event.data);
      if (!data) continue;
      if (this.headers && key !== this.lastKey) {
        if (!this.atLineStart) text += "\n";
        text += `${bold}${cyan}── ${printable(event.step)} on ${printable(event.host)} ──${plain}\n`;
        this.lastKey = key;
      }
      text += event.stream === "stderr" ? `${red}${data}${plain}` : data;
      this.atLineStart = data.endsWith("\n");
    }
    return text;
  }
}

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
    Object.assign(element, { terminal: term });
    const shown = (event: EventOf<"step.output">) => filter === "all" || stepKey(event) === filter;
    let painter = new OutputPainter(filter === "all");
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
      painter = new OutputPainter(filter === "all");
      const events = output.events.filter(shown);
      if (anchor === undefined) write([painter.paint(events)]);
      else {
        // Paged back: show where the older output meets what was shown, not the window's end.
        const above = painter.paint(events.filter((event) => event.seq < anchor));
        const below = painter.paint(events.filter((event) => event.seq >= anchor));
        term.write(above + below, () =>
          term.scrollToLine(Math.max(0, linesOf(above) - Math.floor(term.rows / 2))),
        );
      }
      setVersion((version) => version + 1);
    };
    output.onAppend = (events) => write([painter.paint(events.filter(shown))]);
    output.onReset();
    // The terminal takes the window's height under what is above it, so its last line is in
    // view without scrolling; where too little is left, the page scrolls to bring it in (once
    // on open, and whenever what is above changes while the reader has not scrolled past it).
    const place = () => {
      const top = element.getBoundingClientRect().top + window.scrollY;
      const height = Math.max(minHeightPx, Math.floor(window.innerHeight - top - bottomGapPx));
      if (Math.abs(element.offsetHeight - height) > 1) {
        element.style.height = `${height}px`;
        fit.fit();
      }
      const box = element.getBoundingClientRect();
      if (box.bottom > window.innerHeight && box.top >= 0) element.scrollIntoView({ block: "end" });
    };
    place();
    const above = new ResizeObserver(() => place());
    above.observe(document.body);
    const resized = () => {
      place();
      fit.fit();
    };
    window.addEventListener("resize", resized);
    return () => {
      above.disconnect();
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
