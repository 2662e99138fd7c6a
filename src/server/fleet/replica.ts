import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../core/logger.js";
import type { FleetEnvelope, FleetLink, FleetMessage } from "../../store/fleet-link.js";
import type { Store } from "../../store/index.js";

export interface ReplicaTimings {
  /** How often the replica says it is alive, and the leader does its rounds. */
  heartbeatMs: number;
  /** A replica silent this long is presumed dead: its runs are adopted, its runners go offline. */
  leaseMs: number;
}

export const defaultReplicaTimings: ReplicaTimings = { heartbeatMs: 1000, leaseMs: 10_000 };

/** The replica id of a home folder: kept in `<home>/replica-id`, so a restart is the same replica. */
export function replicaIdFor(home: string | undefined): string {
  const fresh = `${hostname()
    .replace(/[^A-Za-z0-9.-]/g, "-")
    .slice(0, 40)}-${randomBytes(3).toString("hex")}`;
  if (!home) return fresh;
  const file = join(home, "replica-id");
  if (existsSync(file)) {
    const stored = readFileSync(file, "utf8").trim();
    if (stored) return stored;
  }
  writeFileSync(file, `${fresh}\n`, { mode: 0o644 });
  return fresh;
}

/** What the leader does each round, once for the whole fleet. */
export type LeaderRound = () => Promise<void>;

/**
 * This server as one replica of the fleet: it heartbeats its row, sends and receives fleet messages, and
 * competes for the lead. The leader's rounds (lease expiry, adopting dead replicas' runs, pruning) run on
 * one replica; another takes over within a heartbeat or two of PostgreSQL freeing a dead leader's lock.
 */
export class Replica {
  private leading = false;
  private fenced = false;
  private timer: NodeJS.Timeout | undefined;
  /** The heartbeat in flight, if any: a tick that finds one still running is skipped, not queued. */
  private beating: Promise<void> | undefined;
  /** The lead's check and the leader's removals in flight, if any (as `beating`). */
  private steering: Promise<void> | undefined;
  /** The leader's rounds in flight, if any: they never hold up the heartbeat. */
  private leadingRounds: Promise<void> | undefined;
  private readonly rounds: LeaderRound[] = [];
  /** Leader only: each other replica's last `seen_at`, and when (by this clock) it last changed. */
  private readonly observed = new Map<string, { seenAt: string; since: number }>();
  /** Set by `start`: the server is up, and this replica competes for the lead and does its rounds. */
  private serving = false;
  /** When this replica's last heartbeat was written (by this clock). */
  private lastBeat: number | undefined;

  constructor(
    readonly id: string,
    private readonly store: Pick<Store, "fleet" | "outages">,
    private readonly link: FleetLink,
    private readonly timings: ReplicaTimings,
    private readonly logger: Logger,
    /** The fleet presumed this replica dead and gave its runs to others: it must stop at once. */
    private readonly onFenced: () => void,
    private readonly describe: () => { url: string | null; version: string; schema_level: number },
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  /** Sends a message to the other replicas (and this one). */
  tell(message: FleetMessage): void {
    this.link.notify({ ...message, from: this.id });
  }

  /** Receives the fleet's messages, those this replica sent included. */
  listen(handler: (message: FleetEnvelope) => void): () => void {
    return this.link.onMessage(handler);
  }

  /** Something the leader does each round. */
  whenLeading(round: LeaderRound): void {
    this.rounds.push(round);
  }

  /**
   * Writes this replica's row and heartbeats it from now on; `alone` (SQLite) forgets earlier starts'
   * replicas. Until `start` it only heartbeats: a server still recovering its runs (seconds when busy)
   * must not look silent, or the leader removes its row and fences it as it comes up.
   */
  async join(alone: boolean): Promise<void> {
    await this.store.fleet.join({ id: this.id, hostname: hostname(), ...this.describe() });
    this.lastBeat = Date.now();
    this.startTimer();
    if (alone) await this.store.fleet.removeReplicas({ except: this.id });
    this.leading = await this.link.lead();
    if (this.leading) this.logger.info({ replica: this.id }, "leading the fleet");
  }

  /**
   * Starts the leader's rounds, and the heartbeat if `join` has not. Neither waits for the other: a
   * leader adopting runs for seconds must keep heartbeating, or the fleet fences the adopter itself.
   */
  start(): void {
    this.serving = true;
    this.startTimer();
  }

  private startTimer(): void {
    if (this.timer || this.fenced) return;
    this.timer = setInterval(() => {
      // Each skips a tick while its last is in flight, never waiting for the other: the lead's queries
      // share the fleet link, and a heartbeat held up behind them would have this replica presumed dead.
      if (!this.beating) {
        this.beating = this.beat()
          .catch((error: unknown) => this.logger.error({ err: error }, "replica heartbeat failed"))
          .finally(() => {
            this.beating = undefined;
          });
      }
      if (this.serving && !this.steering && !this.fenced) {
        this.steering = this.steer()
          .catch((error: unknown) => this.logger.error({ err: error }, "replica's fleet round failed"))
          .finally(() => {
            this.steering = undefined;
          });
      }
    }, this.timings.heartbeatMs);
    // A server whose start fails after joining exits: its heartbeat keeps nothing alive.
    this.timer.unref();
  }

  private runRounds(): void {
    if (this.leadingRounds || this.fenced) return;
    this.leadingRounds = (async () => {
      for (const round of this.rounds) {
        if (!this.leading || this.fenced) return;
        await round();
      }
    })()
      .catch((error: unknown) => this.logger.error({ err: error }, "leader round failed"))
      .finally(() => {
        this.leadingRounds = undefined;
      });
  }

  private async beat(): Promise<void> {
    const writing = Date.now();
    const alive = await this.store.fleet.heartbeat(
      { id: this.id, hostname: hostname(), ...this.describe() },
      { ifPresent: true },
    );
    this.noteSlowBeat(writing);
    if (!alive) this.fence("its row is gone from the replicas table");
  }

  /** Competes for the lead; the leader removes silent replicas and does its rounds. */
  private async steer(): Promise<void> {
    const was = this.leading;
    this.leading = await this.link.lead();
    if (this.leading && !was) this.logger.info({ replica: this.id }, "leading the fleet");
    if (!this.leading) {
      await this.checkLeader();
      return;
    }
    const dead = await this.removeSilent();
    if (dead.length > 0)
      this.logger.warn({ replicas: dead }, "replicas stopped heartbeating; adopting their runs");
    this.runRounds();
  }

  /**
   * Warns when heartbeats came over half a lease apart (a whole lease of silence is death), so an operator
   * sees a starved process or slow database before a live replica is fenced. Says whether the write was
   * slow (the database, a busy pool) or the beat started late (a blocked event loop).
   */
  private noteSlowBeat(writing: number): void {
    const now = Date.now();
    const last = this.lastBeat ?? now;
    this.lastBeat = now;
    const gapMs = now - last;
    if (gapMs <= this.timings.leaseMs / 2) return;
    this.logger.warn(
      { replica: this.id, gapMs, writeMs: now - writing, leaseMs: this.timings.leaseMs },
      "this replica's heartbeats came more than half a replica lease apart; a whole lease of silence and the fleet presumes it dead",
    );
  }

  /**
   * Removes replicas whose row has not changed for a replica lease, timed by this clock alone: a
   * `seen_at` is its writer's clock, so it is only compared with itself (a lagging clock would be
   * presumed dead every round, one running ahead mourned only when it says so).
   */
  private async removeSilent(): Promise<string[]> {
    const rows = await this.store.fleet.listReplicas();
    // After the read: timed from before a slow one (busy database or pool), a new replica looks silent.
    const now = Date.now();
    const present = new Set<string>();
    const silent: Array<{ id: string; seenAt: string }> = [];
    for (const row of rows) {
      if (row.id === this.id) continue;
      present.add(row.id);
      const known = this.observed.get(row.id);
      if (known?.seenAt !== row.seen_at) this.observed.set(row.id, { seenAt: row.seen_at, since: now });
      else if (now - this.silentSince(known.since) >= this.timings.leaseMs)
        silent.push({ id: row.id, seenAt: row.seen_at });
    }
    for (const id of this.observed.keys()) if (!present.has(id)) this.observed.delete(id);
    const dead: string[] = [];
    for (const { id, seenAt } of silent) {
      // Only if it has not beaten since it was read.
      dead.push(...(await this.store.fleet.removeReplicas({ only: id, seenAt })));
      this.observed.delete(id);
    }
    return dead;
  }

  /**
   * When a replica first seen silent at `since` counts as silent from: no earlier than the database was
   * last unreachable here, as nobody could heartbeat then; every replica gets a whole lease after.
   */
  private silentSince(since: number): number {
    return Math.max(since, this.store.outages.lastLost() ?? 0);
  }

  /**
   * Another replica leads: if it has been silent a replica lease (by this clock) while its session holds
   * the lead, the session outlived its host (a power cut or partition leaves PostgreSQL's side open until
   * TCP keepalive, hours by default); end it so the fleet has a leader again. This replica's earlier
   * connection's session ends at once.
   */
  private async checkLeader(): Promise<void> {
    const holder = await this.link.leader?.();
    if (!holder) return;
    const row =
      holder.replica === this.id
        ? undefined
        : (await this.store.fleet.listReplicas()).find((r) => r.id === holder.replica);
    const now = Date.now();
    const seenAt = row?.seen_at ?? "";
    const known = this.observed.get(holder.replica);
    if (holder.replica !== this.id) {
      if (known?.seenAt !== seenAt) {
        this.observed.set(holder.replica, { seenAt, since: now });
        return;
      }
      if (now - this.silentSince(known.since) < this.timings.leaseMs) return;
    }
    this.logger.warn(
      { leader: holder.replica, session: holder.session },
      "the leader's replica is silent but its database session holds the lead; ending that session",
    );
    this.observed.delete(holder.replica);
    await this.link.depose?.(holder.session);
  }

  /**
   * Presumed dead and its runs adopted (its row gone, or a write for one of its runs refused): it stops,
   * once, so that no run has two engines.
   */
  fence(why: string): void {
    if (this.fenced) return;
    this.fenced = true;
    this.logger.error(
      { replica: this.id, why },
      "the fleet presumed this replica dead (no heartbeat within the replica lease) and adopted its runs; stopping so that no run has two engines",
    );
    this.stopTimer();
    this.onFenced();
  }

  private stopTimer(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Stops; `leave` also deletes its row, so other replicas adopt its runs at once. */
  async stop(leave: boolean): Promise<void> {
    this.stopTimer();
    await this.beating;
    await this.steering;
    await this.leadingRounds;
    if (leave) await this.store.fleet.removeReplicas({ only: this.id }).catch(() => undefined);
    this.leading = false;
    await this.link.close();
  }
}
