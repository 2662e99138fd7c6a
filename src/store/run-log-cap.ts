import type { UnnumberedEvent } from "../core/events.js";

/** Output of one step on one host that the cap kept out of the store. */
export interface CutOutput {
  step: string;
  host: string;
  bytes: number;
}

/** Where a run stands against its stored log cap, as `runs` keeps it (`log_*` columns). */
export interface RunLogState {
  /** Output bytes stored per run at most; 0 means no cap. */
  maxBytes: number;
  /** Past the cap the oldest output is deleted instead of new output cut (a bot's run). */
  rolling: boolean;
  /** Output bytes (`step.output` data, and the text of a runner's notices on its step; UTF-8) stored. */
  bytes: number;
  /** Null while output is stored; once the cap is reached, what was cut and not yet said. */
  cut: CutOutput[] | null;
}

/**
 * The run's stored log cap applied to a batch. Past the cap no `step.output` is stored (the
 * first event that would cross it neither), so the log is an unbroken beginning; what was cut is
 * counted per step and said in one notice when the step finishes, or at the run's end. Only the
 * store is spared: a step's `output_path` files on its host keep everything. A rolling log
 * stores everything and is trimmed afterwards (`rollingOverflow`).
 *
 * A runner's batch (`fromRunner`) may hold notices on its step too: their text counts as the
 * step's output and is cut as output is, else a runner could store any amount as notices.
 * The engine's own notices are never cut.
 */
export function capRunLog(
  state: RunLogState,
  events: readonly UnnumberedEvent[],
  fromRunner = false,
): { events: UnnumberedEvent[]; state: RunLogState } {
  let bytes = state.bytes;
  let cut = state.cut === null ? null : state.cut.map((entry) => ({ ...entry }));
  const kept: UnnumberedEvent[] = [];
  for (const event of events) {
    // A rolling log trims only output (`rollingOverflow`): notices there are not counted.
    const output = capped(event, fromRunner && !state.rolling);
    if (output) {
      const size = Buffer.byteLength(output.text, "utf8");
      if (state.maxBytes <= 0 || state.rolling || (cut === null && bytes + size <= state.maxBytes)) {
        bytes += size;
        kept.push(event);
        continue;
      }
      cut ??= [];
      const entry = cut.find((c) => c.step === output.step && c.host === output.host);
      if (entry) entry.bytes += size;
      else cut.push({ step: output.step, host: output.host, bytes: size });
      continue;
    }
    if (cut && cut.length > 0 && (event.type === "step.finished" || event.type === "run.finished")) {
      const ended =
        event.type === "step.finished"
          ? cut.filter((c) => c.step === event.step && c.host === event.host)
          : cut;
      cut = cut.filter((c) => !ended.includes(c));
      const outputPath = event.type === "step.finished" ? event.output_path : undefined;
      for (const entry of ended) kept.push(cutNotice(state.maxBytes, entry, event.ts, outputPath));
    }
    kept.push(event);
  }
  return { events: kept, state: { ...state, bytes, cut } };
}

/** The text an event adds to its step's output, as the cap counts it; undefined when it adds none. */
function capped(
  event: UnnumberedEvent,
  fromRunner: boolean,
): { text: string; step: string; host: string } | undefined {
  if (event.type === "step.output") return { text: event.data, step: event.step, host: event.host };
  if (!fromRunner) return undefined;
  if (event.type === "notice") {
    if (event.step !== undefined && event.host !== undefined)
      return { text: event.message, step: event.step, host: event.host };
    return { text: event.message, ...transcript("runner") };
  }
  // An agent's transcript is text its runner sends as it likes: counted as output is.
  if (event.type === "agent.message") return { text: event.text, ...transcript(event.agent) };
  if (event.type === "agent.tool_result") return { text: event.output, ...transcript(event.agent) };
  if (event.type === "agent.tool_call")
    return { text: event.tool + (JSON.stringify(event.input) ?? ""), ...transcript(event.agent) };
  return undefined;
}

/** Where text a runner sends outside any step is counted: its agent's transcript, said as such. */
function transcript(agent: string | undefined): { step: string; host: string } {
  return { step: transcriptStep, host: agent ?? "runner" };
}

/** The step name a cut transcript is counted under; no workflow step is named so (no spaces in names). */
const transcriptStep = "(transcript)";

/**
 * For a rolling log past its cap: how many bytes of the oldest output to delete, bringing the
 * log down to three quarters of the cap so deletes stay rare.
 */
export function rollingOverflow(state: RunLogState): number {
  if (!state.rolling || state.maxBytes <= 0 || state.bytes <= state.maxBytes) return 0;
  return state.bytes - Math.floor(state.maxBytes * 0.75);
}

function cutNotice(
  maxBytes: number,
  { step, host, bytes }: CutOutput,
  ts: string,
  outputPath: string | undefined,
): UnnumberedEvent {
  const reached = `the run's stored log reached its cap of ${maxBytes} bytes: ${bytes} more bytes`;
  const notice = { type: "notice", ts, level: "warn" } as const;
  if (step === transcriptStep)
    return {
      ...notice,
      message: `${reached} of ${host === "runner" ? "the runner's notices" : `agent ${host}'s transcript and the runner's notices`} were not stored`,
    };
  return {
    ...notice,
    step,
    host,
    message:
      `${reached} of output of step "${step}" on ${host} were not stored; ` +
      (outputPath
        ? `the step's output_path files keep everything (${outputPath})`
        : "set args.output_path to keep a step's full output on its host"),
  };
}
