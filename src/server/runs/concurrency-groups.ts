import type { Logger } from "../../core/logger.js";
import type { RunRecord, SlotClaim, SlotWait, Store } from "../../store/index.js";
import { halted } from "../../workflow/halt.js";
import type { ActiveRun } from "./run-kind.js";

/** How often a waiting run asks the store again: a slot freed on another replica costs this much at most. */
const defaultPollMs = 500;

/** Why a queued run has not started: `waiting for concurrency group deploy-prod (run_... is running)`. */
export function groupWaitReason(group: string, wait: SlotWait): string {
  const why =
    wait.why === "ahead"
      ? `${wait.run.run_id} was queued before it`
      : `${wait.run.run_id} ${wait.run.status === "running" ? "is running" : "holds it, waiting for a runner"}`;
  return `waiting for concurrency group ${group} (${why})`;
}

/** The claim of a run on its group's slot; undefined for a run in no group. */
export function slotClaim(run: RunRecord): SlotClaim | undefined {
  if (run.concurrency_group === null) return undefined;
  return {
    run_id: run.id,
    tenant_id: run.tenant_id,
    group: run.concurrency_group,
    created_at: run.created_at,
  };
}

/**
 * Runs of one concurrency group take turns: a run waits here, queued and holding no runner, for its
 * group's slot (a store row, so across replicas). Waiters ask again when a run here frees a slot, and
 * every `pollMs` for slots freed elsewhere.
 */
export class ConcurrencyGroups {
  private readonly wakers = new Set<() => void>();

  constructor(
    private readonly store: Pick<Store, "concurrency">,
    /** Cancels a run wherever it is carried (RunService.cancel). */
    private readonly cancelRun: (runId: string) => Promise<unknown>,
    private readonly logger: Logger,
    private readonly pollMs = defaultPollMs,
  ) {}

  /**
   * `cancel_in_progress`: the group's running run and those queued before this one are canceled,
   * as GitHub Actions replaces the pending run of a group and cancels the one in progress.
   */
  async cancelBefore(run: RunRecord): Promise<void> {
    const claim = slotClaim(run);
    if (!claim) return;
    // Newest first, the holder last: a waiting run must not take the slot the holder frees
    // before its own cancel reaches it.
    for (const other of (await this.store.concurrency.runsBefore(claim)).reverse()) {
      await this.cancelRun(other.run_id).catch((error: unknown) =>
        // It ended meanwhile (CONFLICT), or its replica is gone: either way it no longer runs.
        this.logger.info({ err: error, runId: other.run_id }, "cannot cancel a run of the group"),
      );
    }
  }

  /**
   * True once the run holds its group's slot, false when canceled waiting; never once the server stops
   * (`run.halt`). Says once, as a notice, what it waits for.
   */
  async waitForSlot(run: ActiveRun): Promise<boolean> {
    const claim = slotClaim(run.record);
    if (!claim) return true;
    let said = false;
    while (!run.signal.aborted) {
      if (run.halt.aborted) return halted;
      if (await this.store.concurrency.take(claim)) return true;
      const wait = await this.store.concurrency.waitingFor(claim);
      if (wait && !said) {
        said = true;
        run.sink.emit({ type: "notice", level: "info", message: groupWaitReason(claim.group, wait) });
      }
      await this.nextChance(run.signal, run.halt);
    }
    return false;
  }

  /** Frees the slot a run of a group held, and lets the runs waiting here try at once. */
  async release(run: RunRecord): Promise<void> {
    if (run.concurrency_group === null) return;
    if (await this.store.concurrency.release(run.id)) for (const wake of [...this.wakers]) wake();
  }

  private nextChance(signal: AbortSignal, halt: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        signal.removeEventListener("abort", done);
        halt.removeEventListener("abort", done);
        resolve();
      };
      const timer = setTimeout(done, this.pollMs);
      this.wakers.add(done);
      signal.addEventListener("abort", done, { once: true });
      halt.addEventListener("abort", done, { once: true });
      // Canceled (or stopped) while the store was read: the abort event has fired already.
      if (signal.aborted || halt.aborted) done();
    });
  }
}
