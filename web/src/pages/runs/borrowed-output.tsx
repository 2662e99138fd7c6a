import { type ReactNode, useEffect, useMemo } from "react";
import { finalRunStatuses } from "../../../../src/core/run-states.js";
import type { Schema } from "../../api.js";
import { OutputWindow } from "./output-window.js";
import { RunStream } from "./run-stream.js";
import { shortRunId } from "./step-facts.js";
import { RunTerminal, type StepFilter } from "./terminal.js";

type Run = Schema<"Run">;

/** A step whose output is another run's: a call step's child, or a step a retry kept. */
export type Borrowed =
  | { kind: "call"; step: string }
  | { kind: "kept"; step: string; host: string; from: string };

/** Whose output a selected step shows, when not this run's own. */
export function borrowedFor(
  run: Run,
  step: { name: string; host: string; kept_from?: string | null } | undefined,
): Borrowed | null {
  if (!step) return null;
  if (run.calls?.some((call) => call.step === step.name)) return { kind: "call", step: step.name };
  if (step.kept_from) return { kind: "kept", step: step.name, host: step.host, from: step.kept_from };
  return null;
}

/** The terminal of a borrowed step, with the line saying whose output it is. */
export function BorrowedStepOutput({
  run,
  borrowed,
  onBack,
}: {
  run: Run;
  borrowed: Borrowed;
  onBack: () => void;
}) {
  const back = (
    <button type="button" className="link" onClick={onBack}>
      Show this run's output
    </button>
  );
  if (borrowed.kind === "kept") {
    return (
      <BorrowedOutput runId={borrowed.from} filter={`${borrowed.step}@${borrowed.host}`} live={false} kept>
        Step <strong>{borrowed.step}</strong> was kept from run{" "}
        <a href={`#/runs/${encodeURIComponent(borrowed.from)}`} title={borrowed.from}>
          {shortRunId(borrowed.from)}
        </a>{" "}
        and did not run here: its output there, greyed. {back}
      </BorrowedOutput>
    );
  }
  const call = run.calls?.find((c) => c.step === borrowed.step);
  if (!call) return null;
  return (
    <BorrowedOutput runId={call.run_id} filter="all" live={!finalRunStatuses.includes(call.status)}>
      Step <strong>{call.step}</strong> calls {call.workflow}: the output of its run{" "}
      <a href={`#/runs/${encodeURIComponent(call.run_id)}`}>{call.run_id}</a>. {back}
    </BorrowedOutput>
  );
}

/**
 * Another run's output in this run's terminal place, under a line saying whose it is: a call
 * step's child run (a call step prints nothing of its own), or the run a retry kept a step's
 * outcome from (`kept`: shown greyed, since it did not run here). Follows the run live while
 * it runs.
 */
export function BorrowedOutput({
  runId,
  filter,
  live,
  kept = false,
  children,
}: {
  runId: string;
  filter: StepFilter;
  live: boolean;
  kept?: boolean;
  /** What the line above the terminal says, with a way back to this run's output. */
  children: ReactNode;
}) {
  const output = useMemo(() => new OutputWindow(runId), [runId]);
  useEffect(() => {
    let stream: RunStream | undefined;
    let stopped = false;
    void (async () => {
      await output.loadTail();
      if (stopped || !live) return;
      stream = new RunStream(
        runId,
        output.lastSeq,
        (batch) => output.push(batch),
        () => {},
      );
      stream.start();
    })();
    return () => {
      stopped = true;
      stream?.stop();
    };
  }, [output, runId, live]);
  return (
    <div className={kept ? "borrowed-output kept-output" : "borrowed-output"} data-run={runId}>
      <p className="borrowed-output-note">{children}</p>
      <RunTerminal output={output} filter={filter} live={live} />
    </div>
  );
}
