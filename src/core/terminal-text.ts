/**
 * Text a terminal prints rather than acts on. Two kinds of text reach a terminal: names and
 * messages users chose (run, step, group, bot names, errors and hints quoting them), which are
 * plain text and may hold no escape at all; and what a step or an agent printed, whose colours
 * are part of it but which may not retitle the window, write the clipboard (OSC 52), plant a
 * hyperlink (OSC 8), move the cursor over earlier output or send device controls (DCS).
 */

/**
 * What a terminal would act on rather than print: ESC sequences (CSI such as `ESC[2J`, OSC such
 * as a window title `ESC]0;...BEL`, DCS/SOS/PM/APC strings, two-byte escapes), their 8-bit C1
 * forms, and any other C0 control, DEL or C1 control left over.
 */
const terminalSequence = new RegExp(
  [
    // Strings (OSC, DCS, SOS, PM, APC) up to their terminator; an unterminated one loses its introducer only.
    "(?:\\u001b[\\]PX^_]|[\\u009d\\u0090\\u0098\\u009e\\u009f])[^\\u0007\\u001b\\u009c]*(?:\\u0007|\\u001b\\\\|\\u009c)",
    "(?:\\u001b\\[|\\u009b)[0-?]*[ -/]*[@-~]?",
    "\\u001b[ -/]*[0-~]?",
  ].join("|"),
  "g",
);
/** Tabs and line breaks become a space, so a name stays on its line. */
const whitespaceControl = /[\t\n\v\f\r]/g;
const control = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * `text` safe to print in a terminal: escape sequences (colours too) and control characters
 * removed, tabs and line breaks turned into spaces. For text that users or runners chose (run,
 * step, group, bot, runner and user names, messages quoting them), which could otherwise clear
 * the screen, retitle the window or fake output.
 */
export function printable(text: string): string {
  return text.replace(terminalSequence, "").replace(whitespaceControl, " ").replace(control, "");
}

/** As `printable`, keeping line breaks: for a message or hint of several lines. */
export function printableLines(text: string): string {
  return text
    .split("\n")
    .map((line) => printable(line))
    .join("\n");
}

/**
 * One escape sequence or control character of output, complete: a string (OSC, DCS, SOS, PM,
 * APC) with its terminator, a CSI, a two-byte escape, or a lone control.
 */
const outputSequence = new RegExp(
  [
    "(?:\\u001b[\\]PX^_]|[\\u0090\\u0098\\u009d\\u009e\\u009f])[^\\u0007\\u001b\\u009c]*(?:\\u0007|\\u001b\\\\|\\u009c)",
    "(?:\\u001b\\[|\\u009b)[0-?]*[ -/]*[@-~]",
    "\\u001b[ -/]*[0-~]",
    "[\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f-\\u009f]",
  ].join("|"),
  "g",
);
/** Select Graphic Rendition: colours, bold, underline. The one sequence output keeps. */
const sgr = /^\u001b\[[0-9;:]*m$/;
/** A sequence begun at the end of a chunk and not ended there: the next chunk may end it. */
const unfinished =
  /(?:(?:\u001b[\]PX^_]|[\u0090\u0098\u009d\u009e\u009f])[^\u0007\u001b\u009c]*\u001b?|(?:\u001b\[|\u009b)[0-?]*[ -/]*|\u001b[ -/]*)$/;
/** The longest unfinished sequence held for the next chunk; a longer one loses its introducer. */
const maxHeld = 4096;

/**
 * A step's or an agent's output made safe for a terminal, chunk by chunk: colours (SGR), line
 * breaks, tabs and carriage returns kept; every other escape sequence and control dropped. A
 * sequence split across two chunks is held until the next, so it is judged whole.
 */
export class TerminalOutput {
  private held = "";

  /** The part of `chunk` (after what was held) that may be printed now. */
  push(chunk: string): string {
    let text = this.held + chunk;
    this.held = "";
    const tail = unfinished.exec(text.length > maxHeld ? text.slice(-maxHeld) : text);
    if (tail && tail[0].length > 0 && tail[0].length < maxHeld) {
      this.held = tail[0];
      text = text.slice(0, text.length - tail[0].length);
    }
    return keepColours(text);
  }

  /** What is still held, when no chunk follows: an unfinished sequence is dropped. */
  end(): string {
    const rest = this.held;
    this.held = "";
    return keepColours(rest).replace(/[\u001b\u0090-\u009f]/g, "");
  }
}

/** `text` with every sequence but SGR, and every control but `\n`, `\t` and `\r`, removed. */
export function keepColours(text: string): string {
  return text.replace(outputSequence, (found) => (sgr.test(found) ? found : ""));
}
