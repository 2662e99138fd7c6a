import type { RunEvent } from "../core/events.js";

/** Takes an event and its JSON text, made on first ask and shared by every follower of the run. */
type Listener = (event: RunEvent, json: () => string) => void;
/** Told that a run's events are stored up to `seq` by another replica: read them from the store. */
type StoredListener = (seq: number) => void;
type BatchListener = (events: readonly RunEvent[]) => void;

/** Live fan-out of stored events to followers (SSE clients), per run, and to watchers of every run. */
export class EventBus {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly watchers = new Set<BatchListener>();
  private readonly storedListeners = new Map<string, Set<StoredListener>>();
  private readonly stopping = new AbortController();

  /**
   * Aborts once the server stops: who waits for a run's events in a request (a chat waiting for
   * its run's end, a bot update for its version) answers with what it has, as no event may come.
   */
  get stopped(): AbortSignal {
    return this.stopping.signal;
  }

  /** The server is stopping (see `stopped`). */
  stop(): void {
    this.stopping.abort();
  }

  /** Every stored batch of every run (metrics); returns the unsubscribe. */
  subscribeAll(listener: BatchListener): () => void {
    this.watchers.add(listener);
    return () => {
      this.watchers.delete(listener);
    };
  }

  subscribe(runId: string, listener: Listener): () => void {
    return addPerRun(this.listeners, runId, listener);
  }

  /** Follows what other replicas store for a run (events this one stores come by `subscribe`). */
  subscribeStored(runId: string, listener: StoredListener): () => void {
    return addPerRun(this.storedListeners, runId, listener);
  }

  /** Another replica stored events of `runId` up to `seq`. */
  storedElsewhere(runId: string, seq: number): void {
    const set = this.storedListeners.get(runId);
    if (set) for (const listener of set) listener(seq);
  }

  /** The runs someone here follows. */
  followedRuns(): string[] {
    return [...new Set([...this.listeners.keys(), ...this.storedListeners.keys()])];
  }

  /** Stored events to their followers; `json`, each as the text the store stored, saves serializing it again. */
  publish(events: readonly RunEvent[], json?: readonly string[]): void {
    for (const watcher of this.watchers) watcher(events);
    events.forEach((event, index) => {
      const set = this.listeners.get(event.run_id);
      if (!set) return;
      // Serialized once for all the run's followers (a 64 KiB output costs a pass over its
      // bytes), and only if one of them sends it; not kept past this call.
      let text = json?.[index];
      const serialized = (): string => {
        text ??= JSON.stringify(event);
        return text;
      };
      for (const listener of set) listener(event, serialized);
    });
  }

  get followers(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }
}

/** Adds a listener to a run's set; returns its removal, which drops the set once empty. */
function addPerRun<L>(sets: Map<string, Set<L>>, runId: string, listener: L): () => void {
  let set = sets.get(runId);
  if (!set) {
    set = new Set();
    sets.set(runId, set);
  }
  set.add(listener);
  return () => {
    set.delete(listener);
    if (set.size === 0) sets.delete(runId);
  };
}
