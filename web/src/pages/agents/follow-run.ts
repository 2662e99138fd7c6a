import { api } from "../../api.js";
import { runEventTypes } from "../../event-types.js";

/** A run event as the stream sends it: `type` and `seq` always, the rest by type. */
export interface StreamEvent {
  type: string;
  seq: number;
  ts: string;
  [key: string]: unknown;
}

/**
 * Follows a run's events from `after` on: EventSource cannot send a header, so each connection
 * takes a short-lived stream token first, and a dropped one resumes from the last seq seen with a
 * fresh token. Returns the function that stops following.
 */
export function followRun(runId: string, after: number, onEvent: (event: StreamEvent) => void): () => void {
  let last = after;
  let stopped = false;
  let source: EventSource | undefined;
  let retry: ReturnType<typeof setTimeout> | undefined;

  const connect = async (): Promise<void> => {
    if (stopped) return;
    try {
      const { token } = await api<{ token: string }>(
        "POST",
        `/api/runs/${encodeURIComponent(runId)}/stream-token`,
      );
      if (stopped) return;
      source = new EventSource(
        `/api/runs/${encodeURIComponent(runId)}/events?access_token=${encodeURIComponent(token)}&after=${last}`,
      );
    } catch {
      schedule();
      return;
    }
    const receive = (message: MessageEvent<string>) => {
      const event = JSON.parse(message.data) as StreamEvent;
      if (event.seq <= last) return;
      last = event.seq;
      onEvent(event);
      if (event.type === "run.finished") stop();
    };
    for (const type of runEventTypes) source.addEventListener(type, receive as EventListener);
    source.onerror = () => {
      source?.close();
      // A finished run with nothing new answers 204: the stream is over, not broken.
      api<{ status: string; last_seq: number }>("GET", `/api/runs/${encodeURIComponent(runId)}`).then(
        (run) => {
          const final = !["queued", "running"].includes(run.status);
          if (!(final && run.last_seq <= last)) schedule();
        },
        schedule,
      );
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
