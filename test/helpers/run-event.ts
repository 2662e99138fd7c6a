/**
 * Waits on a run's own SSE stream (`/api/runs/<id>/events`) for the event a test needs, instead
 * of asking the API, or the machine's process list, again and again until it shows.
 */
import { writeFileSync } from "node:fs";
import { RunEvent } from "../../src/core/events.js";
import { processesWith } from "./cli.js";
import { until } from "./processes.js";
import { adminToken } from "./server.js";

/** The first event of the run that `test` accepts, as the run's stream delivers it. */
export async function runEvent(
  url: string,
  runId: string,
  test: (event: RunEvent) => boolean,
  timeoutMs = 60_000,
): Promise<RunEvent> {
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), timeoutMs);
  let seen = 0;
  try {
    const response = await fetch(
      new URL(`/api/runs/${runId}/events?after=0&access_token=${adminToken}`, url),
      { signal: stop.signal },
    );
    if (!response.ok || !response.body) throw new Error(`events of ${runId}: HTTP ${response.status}`);
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of response.body) {
      buffered += decoder.decode(chunk as Uint8Array, { stream: true });
      let end = buffered.indexOf("\n\n");
      while (end >= 0) {
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        end = buffered.indexOf("\n\n");
        const data = block.split("\n").find((line) => line.startsWith("data: "));
        if (!data) continue;
        const event = RunEvent.parse(JSON.parse(data.slice(6)));
        seen += 1;
        if (test(event)) return event;
      }
    }
    throw new Error(`the events of ${runId} ended (${seen} seen) without the one awaited`);
  } catch (error) {
    if (stop.signal.aborted) throw new Error(`no such event of ${runId} in ${timeoutMs} ms (${seen} seen)`);
    throw error;
  } finally {
    clearTimeout(timer);
    stop.abort();
  }
}

/**
 * Once a process whose command line holds `marker` runs: the run's stream says the agent called
 * the tool that starts it, and only then is the process list read, until the process shows.
 */
export async function toolProcessRuns(
  url: string,
  runId: string,
  marker: string,
  timeoutMs = 90_000,
): Promise<void> {
  await runEvent(
    url,
    runId,
    (event) => event.type === "agent.tool_call" && JSON.stringify(event.input).includes(marker),
    timeoutMs,
  );
  await until(`a process of ${marker} runs`, () => processesWith(marker).length > 0, 30_000);
}

/**
 * Writes `file` (empty) once the run's step `step` has finished, however it ended: a step of
 * the run that waits for the file is told even when the step that would have written it failed
 * first. Nothing is written if the run's folder is gone by then.
 */
export function markWhenStepEnds(
  url: string,
  runId: string,
  step: string,
  file: string,
  timeoutMs: number,
): void {
  void runEvent(url, runId, (event) => event.type === "step.finished" && event.step === step, timeoutMs)
    .then(() => writeFileSync(file, ""))
    .catch(() => undefined);
}
