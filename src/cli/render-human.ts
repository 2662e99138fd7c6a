import { styleText } from "node:util";
import type { AgentSummary, EventOf, RunEvent, StepStatus } from "../core/events.js";
import { assertExhaustive } from "../core/exhaustive.js";
import { printable } from "../core/terminal-text.js";
import { table } from "./table.js";

type Style = Parameters<typeof styleText>[0];

/** The smallest buffer a chunk's lines are encoded into: a 64 KiB chunk of ASCII with its prefixes. */
const MIN_WRITE_BUFFER = 256 * 1024;
/** A larger buffer, made for a larger chunk, is not kept for the next. */
const MAX_KEPT_BUFFER = 1024 * 1024;

const statusStyle: Record<StepStatus, Style> = {
  pending: "gray",
  running: "cyan",
  waiting: "yellow",
  success: "green",
  failed: "red",
  skipped: "gray",
  canceled: "yellow",
  timeout: "red",
};

const statusMark: Record<StepStatus, string> = {
  pending: "·",
  running: "▶",
  waiting: "⏸",
  success: "✔",
  failed: "✖",
  skipped: "↷",
  canceled: "■",
  timeout: "⏱",
};

/**
 * Human output of a run: a line as each step starts and ends on a host (state, elapsed time), its
 * output prefixed by host; colored only on a TTY without NO_COLOR. Steps running at once print whole
 * lines only; once two steps have overlapped, each line also names its step.
 */
export class HumanRenderer {
  /** The start of a line not ended yet, by step, host and stream. */
  private readonly partial = new Map<string, string>();
  /** Steps started and not finished, by step and host. */
  private readonly active = new Set<string>();
  /** Two different steps have run at once: output lines name their step from then on. */
  private overlapped = false;
  /** The bytes of the last write, when they may be written over by the next (see writeParts). */
  private writeBuffer: Buffer | undefined;

  constructor(
    private readonly out: NodeJS.WritableStream,
    private readonly color: boolean,
    private readonly quiet = false,
  ) {}

  private paint(style: Style, text: string): string {
    return this.color ? styleText(style, text) : text;
  }

  render(event: RunEvent): void {
    switch (event.type) {
      case "step.started":
        this.started(event.step, event.host);
        if (!this.quiet) {
          const attempt = event.attempt > 1 ? ` (attempt ${event.attempt})` : "";
          this.line(
            `${this.paint("cyan", "▶")} ${printable(event.step)} ${this.paint("gray", `[${printable(event.host)}]`)} running${attempt}`,
          );
        }
        break;
      case "step.output":
        if (!this.quiet) this.output(event.host, event.step, event.stream, event.data);
        break;
      case "step.retrying":
        this.flushOutput(event.host, event.step);
        if (!this.quiet) {
          this.say(
            "yellow",
            `↻ ${printable(event.step)} [${printable(event.host)}] attempt ${event.attempt}${event.max_attempts ? ` of ${event.max_attempts}` : ""} failed (${retryCause(event)}); retrying in ${seconds(event.delay_ms)}`,
          );
        }
        break;
      case "step.finished": {
        this.flushOutput(event.host, event.step);
        this.active.delete(stepKey(event.step, event.host));
        if (this.quiet && event.status !== "failed" && event.status !== "timeout") break;
        const exit =
          event.exit_code !== null && event.status !== "success" ? ` (exit ${event.exit_code})` : "";
        const timing =
          event.status === "skipped"
            ? event.reason
              ? ` (${event.reason})`
              : ""
            : event.kept_from !== undefined
              ? ` (kept from ${printable(event.kept_from)})`
              : ` ${seconds(event.duration_ms)}`;
        const reason = event.error && event.status !== "success" ? `: ${printable(event.error.message)}` : "";
        this.line(
          `${this.paint(statusStyle[event.status], `${statusMark[event.status]} ${printable(event.step)}`)} ${this.paint("gray", `[${printable(event.host)}]`)} ${event.status}${exit}${timing}${reason}`,
        );
        break;
      }
      case "step.waiting":
        // Shown even when quiet: the run goes nowhere until someone answers.
        this.say(
          "yellow",
          `⏸ ${printable(event.step)} waiting for ${event.required && event.required > 1 ? `${event.required} approvals` : "approval"} by ${event.approvers.map(printable).join(", ")}${event.self_approval === false ? " (not the submitter)" : ""}${event.not_before ? ` from ${event.not_before}` : ""} until ${event.deadline}: ${printable(event.message)}`,
        );
        this.say(
          "gray",
          `  answer with: runyard runs approve ${event.run_id} ${shellWord(event.step)} (or reject)${(event.inputs ?? []).map((input) => ` ${input.required && input.default === undefined ? "" : "["}--input ${printable(input.name)}=${input.type === "choice" ? (input.options ?? []).map(printable).join("|") : input.type.toUpperCase()}${input.required && input.default === undefined ? "" : "]"}`).join("")} [--comment TEXT]`,
        );
        break;
      case "approval.answered": {
        const who = event.by === null ? "no answer before the deadline" : `by ${printable(event.by)}`;
        const comment = event.comment ? `: ${printable(event.comment)}` : "";
        const style: Style = event.decision === "approved" ? "green" : "red";
        this.say(style, `  ${printable(event.step)} ${event.decision} ${who}${comment}`);
        break;
      }
      case "step.called":
        this.say(
          "cyan",
          printable(`  ${event.step} calls ${event.workflow} v${event.version}: run ${event.child_run_id}`),
        );
        break;
      case "approval.vote": {
        const comment = event.comment ? `: ${printable(event.comment)}` : "";
        const style: Style = event.decision === "approved" ? "green" : "red";
        this.say(
          style,
          `  ${printable(event.step)} ${event.decision} by ${printable(event.by)} (${event.approvals} of ${event.required} approvals)${comment}`,
        );
        break;
      }
      case "notice":
        if (event.level !== "info" || !this.quiet) {
          const style: Style = event.level === "error" ? "red" : event.level === "warn" ? "yellow" : "gray";
          const where = event.step ? `${event.step}${event.host ? ` [${event.host}]` : ""}: ` : "";
          this.say(style, printable(`${event.level}: ${where}${event.message}`));
        }
        break;
      case "run.finished": {
        this.flushAll();
        const ok = event.status === "success";
        const failedSteps = (event.steps ?? []).filter(
          (s) => s.status === "failed" || s.status === "timeout",
        );
        const summary = `${ok ? "✔" : "✖"} run ${event.status} in ${seconds(event.duration_ms ?? 0)}`;
        this.say(ok ? "green" : "red", summary);
        if (event.error) {
          this.say("red", printable(`  ${event.error.code}: ${event.error.message}`));
          if (event.error.hint) this.say("gray", printable(`  hint: ${event.error.hint}`));
        } else if (failedSteps.length > 0 && !ok) {
          this.say(
            "red",
            printable(`  failed: ${failedSteps.map((s) => `${s.name} [${s.host}]`).join(", ")}`),
          );
        }
        if (event.rolled_back) this.say("yellow", "  rolled back: every rollback succeeded");
        if (event.rollback_failed) {
          this.say(
            "red",
            `  rollback failed at "${printable(event.rollback_failed)}": later rollbacks did not run`,
          );
        }
        if (event.handlers_failed && event.handlers_failed.length > 0) {
          this.say(
            "red",
            printable(`  handler failed: ${event.handlers_failed.join(", ")} (the run's status stands)`),
          );
        }
        if (event.agents && event.agents.length > 0) this.compare(event.agents);
        break;
      }
      case "agent.message":
        if (!this.quiet && event.role === "assistant") {
          for (const line of event.text.trimEnd().split("\n")) {
            this.line(`${this.paint("magenta", `${printable(event.agent ?? "agent")} ›`)} ${line}`);
          }
        }
        break;
      case "agent.tool_call":
        if (!this.quiet) {
          this.say(
            "gray",
            printable(`${event.agent ?? "agent"} ⚙ ${event.tool} ${brief(JSON.stringify(event.input))}`),
          );
        }
        break;
      case "agent.tool_result":
        if (!this.quiet && event.is_error) {
          this.say("yellow", printable(`${event.agent ?? "agent"} ⚠ ${brief(event.output)}`));
        }
        break;
      case "agent.usage":
        break;
      case "artifact.created":
        if (!this.quiet)
          this.say("gray", printable(`artifact ${event.name} (${event.size} bytes): ${event.path}`));
        break;
      case "run.queued":
      case "run.started":
      case "vars.exported":
      case "bot.state":
        // Nothing a person reading a run's terminal needs line by line.
        break;
      default:
        assertExhaustive(event, "event");
    }
  }

  /** An agent run's result: one row per agent, side by side. */
  private compare(agents: AgentSummary[]): void {
    const rows = [
      ["agent", "status", "tests", "diff", "tokens in/out", "cost", "time", "branch"],
      ...agents.map((a) => [
        a.agent,
        a.error ? `${a.status} (${a.error.code})` : a.status,
        a.tests ? a.tests.status : "-",
        a.diff_stats
          ? `${a.diff_stats.files} files +${a.diff_stats.insertions} -${a.diff_stats.deletions}`
          : "-",
        `${a.input_tokens}/${a.output_tokens}`,
        a.cost_usd !== undefined ? `$${a.cost_usd.toFixed(4)}` : "-",
        seconds(a.duration_ms),
        a.branch ? `${a.branch}${a.pushed ? " (pushed)" : ""}` : "-",
      ]),
    ];
    for (const line of table(rows).split("\n")) this.line(`  ${line}`);
    const answer = agents.length === 1 ? agents[0]?.final_text : undefined;
    if (answer && this.quiet) this.line(answer);
  }

  private started(step: string, host: string): void {
    this.active.add(stepKey(step, host));
    if (this.overlapped) return;
    const steps = new Set([...this.active].map((key) => key.slice(0, key.indexOf("\u0000"))));
    this.overlapped = steps.size > 1;
  }

  /** `web1 | `, or `build [web1] | ` once steps have overlapped. */
  private prefix(step: string, host: string, stream: "stdout" | "stderr"): string {
    const where = this.overlapped ? `${printable(step)} [${printable(host)}]` : printable(host);
    return this.paint(stream === "stderr" ? "yellow" : "gray", `${where} | `);
  }

  /**
   * Prints a chunk's whole lines, prefixed, and holds the rest per step, host and stream, so no line
   * mixes two. One write per chunk: a system call per line is most of a chatty step's time.
   */
  private output(host: string, step: string, stream: "stdout" | "stderr", data: string): void {
    const key = `${stepKey(step, host)}\u0000${stream}`;
    const held = this.partial.get(key);
    const end = data.lastIndexOf("\n");
    if (end < 0) {
      this.partial.set(key, held === undefined ? data : held + data);
      return;
    }
    if (end + 1 < data.length) this.partial.set(key, data.slice(end + 1));
    else if (held !== undefined) this.partial.delete(key);
    const prefix = this.prefix(step, host, stream);
    // Not joined to the held line start or the prefixes (each join copies the whole chunk): the parts
    // are encoded in turn into the write's bytes. A surrogate pair split across chunks is encoded whole.
    let start = held ?? "";
    // A regex replace builds one flat string (replaceAll a rope, copied again before encoding).
    // `$` is escaped: a step or host named `a$&b` is printed as it is.
    let lines = data.slice(0, end).replace(/\n/g, `\n${prefix.replaceAll("$", "$$$$")}`);
    if (isHighSurrogate(start.charCodeAt(start.length - 1))) {
      lines = start.slice(-1) + lines;
      start = start.slice(0, -1);
    }
    this.writeParts(prefix, start, lines, "\n");
  }

  /** Writes the parts as UTF-8 in one write. */
  private writeParts(...parts: string[]): void {
    let length = 0;
    for (const part of parts) length += part.length;
    // A UTF-16 code unit is at most 3 bytes of UTF-8 (a pair of them, 4).
    const needed = length * 3;
    let bytes = this.writeBuffer;
    if (!bytes || bytes.length < needed) bytes = Buffer.allocUnsafe(Math.max(needed, MIN_WRITE_BUFFER));
    let at = 0;
    for (const part of parts) at += bytes.write(part, at);
    this.out.write(bytes.subarray(0, at));
    // The process's stdout has written the bytes once its write returns with nothing pending, so the
    // buffer serves the next chunk; another stream may keep it (a PassThrough hands it on as is).
    this.writeBuffer =
      this.out === process.stdout && process.stdout.writableLength === 0 && bytes.length <= MAX_KEPT_BUFFER
        ? bytes
        : undefined;
  }

  /** A step's unended lines, when it ends or tries again: each as a line of its own. */
  private flushOutput(host: string, step: string): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const key = `${stepKey(step, host)}\u0000${stream}`;
      const rest = this.partial.get(key);
      if (rest) this.out.write(`${this.prefix(step, host, stream)}${rest}\n`);
      this.partial.delete(key);
    }
  }

  private flushAll(): void {
    for (const key of [...this.partial.keys()]) {
      const [step = "", host = ""] = key.split("\u0000");
      this.flushOutput(host, step);
    }
  }

  private line(text: string): void {
    this.out.write(`${text}\n`);
  }

  /** A line of `text` in `style`. */
  private say(style: Style, text: string): void {
    this.line(this.paint(style, text));
  }
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function stepKey(step: string, host: string): string {
  return `${step}\u0000${host}`;
}

/** One line of at most 120 characters. */
function brief(text: string): string {
  const line = text.replace(/\s+/g, " ");
  return line.length > 120 ? `${line.slice(0, 117)}...` : line;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(2)}s` : `${(ms / 1000).toFixed(1)}s`;
}

/** A step name as one shell word, quoted only when it needs to be. */
function shellWord(text: string): string {
  return /^[A-Za-z0-9._@:/-]+$/.test(text) ? text : `'${text.replace(/'/g, "'\\''")}'`;
}

/** `exit 3`, `timeout: step timed out after 2s`, `runner_lost: ...`: why an attempt is retried. */
function retryCause(event: EventOf<"step.retrying">): string {
  const exit = `exit ${event.exit_code ?? "-"}`;
  if (!event.reason || event.reason === "error")
    return event.error && event.exit_code === null ? `${exit}: ${printable(event.error.message)}` : exit;
  return `${event.reason}${event.error ? `: ${printable(event.error.message)}` : ""}`;
}
