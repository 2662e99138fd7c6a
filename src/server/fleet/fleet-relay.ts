import type { Logger } from "../../core/logger.js";
import type { FleetEnvelope } from "../../store/fleet-link.js";
import type { Store } from "../../store/index.js";
import type { ApprovalWaits } from "../approvals/approval-waits.js";
import type { EventBus } from "../event-bus.js";
import type { Revocations } from "../identity/revocations.js";
import type { JobQueue } from "../job-queue.js";
import type { RunnerHub } from "../runner-hub.js";
import type { RunService } from "../runs/run-service.js";
import type { Replica } from "./replica.js";

/** How often a replica makes up for lost messages unless RUNYARD_REPLICA_SWEEP_MS says otherwise. */
export const defaultSweepMs = 2000;

export interface FleetRelayDeps {
  replica: Replica;
  store: Pick<Store, "fleet" | "events">;
  bus: EventBus;
  queue: JobQueue;
  hub: RunnerHub;
  runs: RunService;
  approvals: ApprovalWaits;
  revocations: Revocations;
  logger: Logger;
  /** Other replicas may share the database (PostgreSQL): announce stored events to them. */
  shared: boolean;
  /** How often the sweep makes up for lost messages (RUNYARD_REPLICA_SWEEP_MS). */
  sweepMs: number;
}

/**
 * What one replica hears from and tells the others: stored events (for followers and the run's engine),
 * changed job rows (for the engine waiting on one), queued jobs, cancels. A lost message costs latency
 * only: a sweep every `sweepMs` reads what it would have said from the store. Returns the stop.
 */
export function relayFleet({
  replica,
  store,
  bus,
  queue,
  hub,
  runs,
  approvals,
  revocations,
  logger,
  shared,
  sweepMs,
}: FleetRelayDeps): () => void {
  const stopListening = replica.listen((message) => onFleetMessage(message));
  const onFleetMessage = (message: FleetEnvelope): void => {
    const fromHere = message.from === replica.id;
    switch (message.type) {
      case "events":
        if (!fromHere) {
          bus.storedElsewhere(message.run_id, message.seq);
          // Its end, perhaps: the runners here keeping its folders are told.
          hub.runEnds.storedElsewhere(message.run_id, message.seq);
          // A runner's batch stored elsewhere: the run's record here follows it.
          if (runs.carries(message.run_id)) runs.catchUp(message.run_id);
        }
        break;
      case "job":
        queue.jobsChanged([message.job_id]);
        runs.jobChanged(message.run_id);
        break;
      case "jobs":
        if (!fromHere) hub.dispatch();
        break;
      case "cancel-job":
        if (!fromHere) hub.cancel(message.job_id, message.runner_id);
        break;
      case "cancel-run":
        // Any session that may connect to the database can NOTIFY: act on the stored request only.
        if (runs.carries(message.run_id)) {
          void store.fleet
            .cancelRequested(message.run_id)
            .then((asked) => asked && runs.cancelRequested(message.run_id))
            .catch((error: unknown) => logger.warn({ err: error }, "cannot read a cancel request"));
        }
        break;
      case "approval":
        // The wait reads the stored answer itself: a forged message only makes it read early.
        if (!fromHere) approvals.wake(message.run_id, message.step);
        break;
      case "revoked":
        // The replica that revoked it has acted already; the others check the store first.
        if (!fromHere)
          void revocations
            .revoked({ credential: message.credential, id: message.id })
            .catch((error: unknown) => logger.warn({ err: error }, "cannot act on a revocation"));
        break;
      default: {
        // A newer replica's message (a rolling upgrade), or anyone's who may NOTIFY: ignored, as
        // a throw here would end the process from inside the database link.
        const unknown: never = message;
        logger.debug(
          { type: (unknown as { type?: unknown }).type },
          "fleet message of an unknown type ignored",
        );
      }
    }
  };
  // Followers of runs carried elsewhere hear of stored batches by message, once per run and tick.
  const announced = new Map<string, number>();
  let announcing = false;
  // A single server (SQLite) has no other replica to tell.
  const stopAnnouncing = !shared
    ? () => undefined
    : bus.subscribeAll((events) => {
        for (const event of events)
          announced.set(event.run_id, Math.max(announced.get(event.run_id) ?? 0, event.seq));
        if (announcing) return;
        announcing = true;
        setImmediate(() => {
          announcing = false;
          for (const [runId, seq] of announced) replica.tell({ type: "events", run_id: runId, seq });
          announced.clear();
        });
      });
  // Alone on SQLite, messages stay in the process and are never lost: nothing to sweep.
  const followerSweep = shared
    ? setInterval(() => {
        void (async () => {
          for (const runId of bus.followedRuns()) {
            if (runs.carries(runId)) continue;
            const seq = await store.events.lastSeq(runId).catch(() => undefined);
            if (seq !== undefined) bus.storedElsewhere(runId, seq);
          }
          // A lost `job` message: reread the jobs engines here wait for, and those of runs parked here.
          await queue
            .recheckWaited()
            .catch((error: unknown) =>
              logger.warn({ err: error }, "cannot read the rows of the jobs waited for"),
            );
          await runs
            .recheckParked()
            .catch((error: unknown) => logger.warn({ err: error }, "cannot read the parked runs' jobs"));
          // A lost `revoked` message: a runner token gone from the store still closes its sockets.
          await revocations.sweep();
          // A lost `cancel-run` message: the request is stored, so the run still stops here.
          if (runs.activeRuns > 0)
            for (const runId of await store.fleet.cancelRequestedRuns(replica.id))
              runs.cancelRequested(runId);
        })().catch((error: unknown) => logger.warn({ err: error }, "fleet sweep failed"));
      }, sweepMs)
    : undefined;
  followerSweep?.unref();
  return () => {
    clearInterval(followerSweep);
    stopAnnouncing();
    stopListening();
  };
}
