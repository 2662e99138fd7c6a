import { runEventTypes } from "../../../../src/core/event-types.js";
import type { RunEvent } from "../../../../src/core/events.js";
import { finalRunStatuses } from "../../../../src/core/run-states.js";
import { answer, api } from "../../api.js";
import { parseStreamEvent } from "../../stream-event.js";

/**
 * Follows a run's events from `after` on: EventSource cannot send a header, so each connection
 * takes a short-lived stream token first, and a dropped one resumes from the last seq seen with a
 * fresh token. Returns the function that stops following.
 */
export function followRun(runId: string, after: number, onEvent: (event: RunEvent) => void): () => void {
  let last = after;
  let stopped = false;
  let source: EventSource | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const connect = async (): Promise<void> => {
    if (stopped) return;
    try {
      const { token } = await answer(
        api.POST("/api/runs/{id}/stream-token", { params: { path: { id: runId } } }),
      );
      if (stopped) return;
      source = new EventSource(
        `/api/runs/${encodeURIComponent(runId)}/events?access_token=${encodeURIComponent(token)}&after=${last}`,
      );
    } catch {
      schedule();
      return;
    }
    const receive = (message: MessageEvent) => {
      const event = parseStreamEvent(message.data);
      if (!event || event.seq <= last) return;
      last = event.seq;
      onEvent(event);
      if (event.type === "run.finished") stop();
    };
    for (const type of runEventTypes) source.addEventListener(type, receive);
    source.onerror = () => {
      source?.close();
      // A finished run with nothing new answers 204: the stream is over, not broken.
      answer(api.GET("/api/runs/{id}", { params: { path: { id: runId } } })).then((run) => {
        const final = finalRunStatuses.includes(run.status);
        if (!(final && run.last_seq <= last)) schedule();
      }, schedule);
    };
  };
  const schedule = () => {
    if (!stopped) retry = setTimeout(connect, 1000);
  };
  const stop = () => {
    stopped = true;
    source?.close();
    if (retry) clearTimeout(retry);
  };
  void connect();
  return stop;
}
