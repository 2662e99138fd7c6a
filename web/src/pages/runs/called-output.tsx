import { useEffect, useMemo } from "react";
import { finalRunStatuses } from "../../../../src/core/run-states.js";
import type { Schema } from "../../api.js";
import { OutputWindow } from "./output-window.js";
import { RunStream } from "./run-stream.js";
import { RunTerminal } from "./terminal.js";

type CalledRun = Schema<"CalledRun">;

/**
 * The output of a `workflow.call` step: its child run's, in the calling run's terminal place.
 * A call step prints nothing of its own; what it did is its child's steps. Follows the child
 * live while it runs.
 */
export function CalledOutput({ call, onBack }: { call: CalledRun; onBack: () => void }) {
  const output = useMemo(() => new OutputWindow(call.run_id), [call.run_id]);
  const live = !finalRunStatuses.includes(call.status);
  useEffect(() => {
    let stream: RunStream | undefined;
    let stopped = false;
    void (async () => {
      await output.loadTail();
      if (stopped || !live) return;
      stream = new RunStream(
        call.run_id,
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
  }, [output, call.run_id, live]);
  return (
    <>
      <p className="called-output-note">
        Step <strong>{call.step}</strong> calls {call.workflow}: the output of its run{" "}
        <a href={`#/runs/${encodeURIComponent(call.run_id)}`}>{call.run_id}</a>.{" "}
        <button type="button" className="link" onClick={onBack}>
          Show this run's output
        </button>
      </p>
      <RunTerminal output={output} filter="all" live={live} />
    </>
  );
}
