import { finalRunStatuses } from "../core/events.js";
import type { Logger } from "../core/logger.js";
import type { Store } from "../store/index.js";
import type { EventBus } from "./event-bus.js";

/** A runner's session as far as its runs' ends go (RunnerSession). */
export interface RunKeeper {
  /** The runs whose folders its runner keeps: named at hello, and those of the steps given it. */
  readonly keeps: ReadonlySet<string>;
  /** The tenant its runner serves only, or null (a platform or shared runner). */
  readonly tenantId: string | null;
  /** Tells the runner the run is over (`run_ended`), once. */
  runEnded(runId: string): void;
}

/** How often the runs kept by this replica's runners are read again: an end no event said. */
const sweepMs = 30_000;

/**
 * Tells each runner here when a run whose folders it keeps has ended (`run_ended`), so its sandbox and
 * folders end with it (RunFolders). An end is heard as a `run.finished` stored here, as another
 * replica's batch (its last event read), and from the runs' statuses: at a runner's hello, and every
 * `sweepMs` (an end with no event, `interrupted`, or a lost message). A runner told twice does nothing.
 */
export class RunEnds {
  private sweep: NodeJS.Timeout | undefined;
  private stopFollowing: () => void = () => undefined;

  constructor(
    private readonly store: Pick<Store, "runs" | "events">,
    /** The live sessions of this replica. */
    private readonly keepers: () => Iterable<RunKeeper>,
    private readonly logger: Logger,
  ) {}

  /** Follows the runs' ends stored here, and sweeps. */
  start(bus: EventBus): void {
    this.stopFollowing = bus.subscribeAll((events) => {
      for (const event of events) if (event.type === "run.finished") this.ended(event.run_id);
    });
    this.sweep = setInterval(() => {
      const kept = new Set<string>();
      for (const keeper of this.keepers()) for (const runId of keeper.keeps) kept.add(runId);
      if (kept.size > 0) this.check([...this.keepers()], kept);
    }, sweepMs);
    this.sweep.unref();
  }

  stop(): void {
    clearInterval(this.sweep);
    this.stopFollowing();
  }

  /** The run is over: every runner here keeping it is told. */
  ended(runId: string): void {
    for (const keeper of this.keepers()) keeper.runEnded(runId);
  }

  /** Another replica stored the run's events up to `seq`: if a runner here keeps it, was the last its end? */
  storedElsewhere(runId: string, seq: number): void {
    if (![...this.keepers()].some((keeper) => keeper.keeps.has(runId))) return;
    void this.store.events
      .list(runId, { after: seq - 1, limit: 1 })
      .then((events) => {
        if (events.some((event) => event.type === "run.finished")) this.ended(runId);
      })
      .catch((error: unknown) => this.logger.warn({ err: error, runId }, "cannot read whether a run ended"));
  }

  /** Reads whether each of `runIds` has ended and tells the runners keeping those that have. */
  check(keepers: readonly RunKeeper[], runIds: Iterable<string>): void {
    void (async () => {
      for (const runId of runIds) {
        const state = await this.store.runs.state(runId);
        for (const keeper of keepers) {
          if (!keeper.keeps.has(runId)) continue;
          // A run not stored is over too. Another tenant's runs are answered as not stored, so a tenant's
          // runner learns nothing of them (it ran none, so keeps no folders of them).
          const foreign =
            state !== undefined && keeper.tenantId !== null && state.tenant_id !== keeper.tenantId;
          if (!state || foreign || finalRunStatuses.includes(state.status)) keeper.runEnded(runId);
        }
      }
    })().catch((error: unknown) => this.logger.warn({ err: error }, "cannot read whether runs ended"));
  }
}
