import type { FastifyReply } from "fastify";
import { isFinalStatus, type RunEvent } from "../core/events.js";
import type { Store } from "../store/types.js";
import type { EventBus } from "./event-bus.js";

const keepAliveMs = 15_000;

/**
 * Streams a run's events as Server-Sent Events: `id:` is the seq, `data:` the event. Stored
 * events after `after` come first, then live ones; a client that reconnects with
 * `Last-Event-ID` gets exactly what it missed. The stream ends after `run.finished`.
 */
export async function streamRunEvents(
  reply: FastifyReply,
  deps: { store: Store; bus: EventBus },
  runId: string,
  after: number,
  follow = true,
): Promise<void> {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  raw.write(": runyard event stream\n\n");

  let last = after;
  let ended = false;
  let live: RunEvent[] | undefined = [];
  const end = (): void => {
    if (ended) return;
    ended = true;
    unsubscribe();
    clearInterval(keepAlive);
    raw.end();
  };
  const write = (event: RunEvent): void => {
    if (ended || event.seq <= last) return;
    last = event.seq;
    raw.write(`id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`);
    if (event.type === "run.finished") end();
  };
  // Subscribe before reading the store, so nothing stored in between is missed.
  const unsubscribe = deps.bus.subscribe(runId, (event) => {
    if (live) live.push(event);
    else write(event);
  });
  const keepAlive = setInterval(() => raw.write(": keep-alive\n\n"), keepAliveMs);
  raw.on("close", end);

  for (;;) {
    const page = await deps.store.listEvents(runId, { after: last, limit: 1000 });
    for (const event of page) write(event);
    if (page.length < 1000 || ended) break;
  }
  const buffered = live;
  live = undefined;
  for (const event of buffered) write(event);
  if (!follow) end();
  if (!ended) {
    const run = await deps.store.getRun(runId);
    const finished = run && isFinalStatus(run.status);
    if (finished && (await deps.store.lastSeq(runId)) === last) end();
  }
}
