import type { FastifyReply } from "fastify";
import { RunyardError } from "../core/errors.js";
import { isFinalStatus } from "../core/events.js";
import type { RunState, SerializedRunEvent, Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

const keepAliveMs = 15_000;
/** How long EventSource waits before it reconnects after a dropped stream (`retry:`). */
export const sseRetryMs = 2000;
/** About how many bytes of events one client reads from the store at a time. */
const pageBytes = 1024 * 1024;
const maxPageEvents = 1000;
/** Frames read from the store are sent in writes of about this many characters. */
const writeChars = 64 * 1024;

/** Counts open event streams (the `runyard_sse_clients` metric). */
export interface StreamGauge {
  inc(): void;
  dec(): void;
}

/** The credential that opened a stream: the stream ends when it is revoked. */
export interface StreamCredential {
  /** Registers the stream's end, called when the credential is revoked; returns the release. */
  hold(end: () => void): () => void;
  /** Whether the credential still lives (asked at each keep-alive, in case a revocation was missed). */
  lives(): Promise<boolean>;
}

/**
 * Streams a run's events as Server-Sent Events (`id:` seq, `event:` type, `data:` the event): stored ones
 * after `after`, then live; `Last-Event-ID` resumes exactly. It ends after `run.finished`; a finished run
 * with nothing new answers 204, which tells EventSource to stop.
 *
 * A client costs at most a page of events and a socket buffer, however slowly it reads: the store is read
 * a page at a time, each write waits for drain, and live events are not buffered while it is behind: it
 * catches up from the store, where `seq` says where to resume.
 */
export async function streamRunEvents(
  reply: FastifyReply,
  deps: {
    store: Pick<Store, "runs" | "events">;
    bus: EventBus;
    streams?: StreamGauge;
    credential?: StreamCredential;
  },
  runId: string,
  after: number,
  follow = true,
  /** Where the run is, if the caller has just read it, so it is not read again. */
  run?: RunState,
): Promise<void> {
  if (finishedAt(run ?? (await deps.store.runs.state(runId)), after)) {
    reply.code(204).send();
    return;
  }
  reply.hijack();
  deps.streams?.inc();
  const raw = reply.raw;
  raw.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache, no-transform",
    connection: "keep-alive",
    "x-accel-buffering": "no",
  });
  // Sent with the first frames: headers, this and the first page leave in one write.
  let preamble = `: runyard event stream\nretry: ${sseRetryMs}\n\n`;
  const sendPreamble = (): void => {
    if (preamble) raw.write(preamble);
    preamble = "";
  };

  /** The highest seq written to this client. */
  let last = after;
  /** The highest seq known to be stored (from live events the client has not had yet). */
  let stored = after;
  let ended = false;
  let full = false;
  let pumping = false;
  let pageLimit = 64;

  const end = (): void => {
    if (ended) return;
    ended = true;
    deps.streams?.dec();
    unsubscribe();
    unsubscribeStored();
    release();
    clearInterval(keepAlive);
    sendPreamble();
    raw.end();
  };
  /** Writes frames (JSON as stored or as the bus made it), `through` the last; ends after `run.finished`. */
  const write = (frames: string, through: SerializedRunEvent): void => {
    last = through.seq;
    if (!raw.write(preamble + frames)) full = true;
    preamble = "";
    if (through.type === "run.finished") end();
  };
  const drained = (): Promise<void> =>
    new Promise((resolve) => {
      const done = (): void => {
        raw.off("drain", done);
        raw.off("close", done);
        resolve();
      };
      raw.on("drain", done);
      raw.on("close", done);
    });

  /** Writes from the store, page by page, until the client has everything stored. */
  const pump = async (): Promise<void> => {
    if (pumping) return;
    // This turn's live frames go first: the pump reads the store after them.
    writeLive();
    pumping = true;
    try {
      while (!ended) {
        if (full) await drained();
        if (ended) break;
        const limit = pageLimit;
        const told = stored;
        const page = await deps.store.events.listSerialized(runId, { after: last, limit });
        let bytes = 0;
        // A page's small events go out a few per write (and response chunk); backpressure is heeded between.
        let frames = "";
        let framed: SerializedRunEvent | undefined;
        for (const event of page) {
          if (ended) break;
          if (event.seq <= (framed?.seq ?? last)) continue;
          frames += frame(event);
          framed = event;
          if (frames.length < writeChars && event.type !== "run.finished") continue;
          bytes += frames.length;
          write(frames, event);
          frames = "";
          framed = undefined;
          if (full && !ended) await drained();
        }
        if (framed && !ended) {
          bytes += frames.length;
          write(frames, framed);
        }
        if (page.length > 0) {
          const average = Math.max(1, bytes / page.length);
          pageLimit = Math.max(1, Math.min(maxPageEvents, Math.floor(pageBytes / average)));
        }
        if (page.length < limit && last >= stored) break;
        // Told of more, yet nothing after `last`: a stray message. Stop, not loop; the next event wakes it.
        if (page.length === 0 && stored === told) break;
      }
    } catch (error) {
      // Database away (restart, failover): an `error` event without `id:`; the client resumes from its
      // Last-Event-ID once the server answers.
      if (error instanceof RunyardError && error.code === "STORE_UNAVAILABLE" && !ended) {
        sendPreamble();
        raw.write(`event: error\ndata: ${JSON.stringify({ error: error.toInfo() })}\n\n`);
      }
      end(); // or the store closed under us (server shutting down)
    } finally {
      pumping = false;
    }
  };

  /** This event-loop turn's live frames, written together: a stored batch is one write, not one each. */
  let live = "";
  let liveThrough: SerializedRunEvent | undefined;
  const writeLive = (): void => {
    const through = liveThrough;
    liveThrough = undefined;
    if (through && !ended) write(live, through);
    live = "";
  };
  // Subscribe before reading the store, so nothing stored in between is missed.
  const unsubscribe = deps.bus.subscribe(runId, (event, json) => {
    const next = (liveThrough?.seq ?? last) + 1;
    if (ended || event.seq < next) return;
    stored = Math.max(stored, event.seq);
    // Behind or backed up: drop it; the pump reads it from the store when the client drains.
    if (pumping || full || event.seq !== next) {
      writeLive();
      void pump();
      return;
    }
    const serialized = { seq: event.seq, type: event.type, json: json() };
    if (!liveThrough) queueMicrotask(writeLive);
    live += frame(serialized);
    liveThrough = serialized;
  });
  // Events another replica stores (the run's engine lives there) come as a seq to read up to.
  const unsubscribeStored = deps.bus.subscribeStored(runId, (seq) => {
    if (ended || seq <= last) return;
    stored = Math.max(stored, seq);
    void pump();
  });
  // A revoked credential ends its streams at once; should that word be lost, the next keep-alive does.
  const release = deps.credential?.hold(end) ?? (() => undefined);
  const keepAlive = setInterval(() => {
    void (deps.credential?.lives() ?? Promise.resolve(true)).then(
      (lives) => {
        if (!lives) end();
        else if (!full && !ended) raw.write(": keep-alive\n\n");
      },
      () => undefined,
    );
  }, keepAliveMs);
  raw.on("drain", () => {
    full = false;
  });
  raw.on("close", end);

  await pump();
  sendPreamble();
  if (!follow) end();
  if (!ended && finishedAt(await deps.store.runs.state(runId), last)) end();
}

/** An event's SSE frame: `id:` its seq, `event:` its type, `data:` its JSON. */
function frame(event: SerializedRunEvent): string {
  return `id: ${event.seq}\nevent: ${event.type}\ndata: ${event.json}\n\n`;
}

/**
 * The run has ended with no event after `seq`. `last_seq` is read with the status (a run's events are
 * stored before its record says it ended).
 */
function finishedAt(run: RunState | undefined, seq: number): boolean {
  if (!run || !isFinalStatus(run.status)) return false;
  return run.last_seq <= seq;
}
