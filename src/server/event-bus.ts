import type { RunEvent } from "../core/events.js";

type Listener = (event: RunEvent) => void;
type BatchListener = (events: readonly RunEvent[]) => void;

/** Live fan-out of stored events to followers (SSE clients), per run, and to watchers of every run. */
export class EventBus {
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly watchers = new Set<BatchListener>();

  /** Every stored batch of every run (metrics); returns the unsubscribe. */
  subscribeAll(listener: BatchListener): () => void {
    this.watchers.add(listener);
    return () => {
      this.watchers.delete(listener);
    };
  }

  subscribe(runId: string, listener: Listener): () => void {
    let set = this.listeners.get(runId);
    if (!set) {
      set = new Set();
      this.listeners.set(runId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(runId);
    };
  }

  publish(events: readonly RunEvent[]): void {
    for (const watcher of this.watchers) watcher(events);
    for (const event of events) {
      const set = this.listeners.get(event.run_id);
      if (set) for (const listener of set) listener(event);
    }
  }

  get followers(): number {
    let count = 0;
    for (const set of this.listeners.values()) count += set.size;
    return count;
  }
}
