import { newId } from "../../core/ids.js";
import type { Logger } from "../../core/logger.js";
import type { AuditRepo } from "../../store/index.js";

/** Why a login was refused: a wrong username or password, or too many failures (429). */
export type LoginRefusal = "wrong_credentials" | "rate_limited";

/** One refused login, as the login route saw it. */
export interface RefusedLogin {
  address: string;
  username: string;
  /** The user of that name, when there is one (their tenant is where the entry goes). */
  user: { id: string; tenant_id: string | null } | undefined;
  reason: LoginRefusal;
}

/** Distinct usernames a tally lists; past it, only how many more. */
const maxUsernames = 10;
/** Tallies kept at once; past it, new clients share one tally with no address (a flood of addresses). */
const maxTallies = 10_000;
/** How often counts reach the store once a tally exists. */
const flushMs = 1000;

interface Tally {
  id: string;
  minute: number;
  at: string;
  lastAt: string;
  address: string | null;
  tenantId: string | null;
  reason: LoginRefusal;
  actor: { user_id: string | null; username: string };
  count: number;
  usernames: Set<string>;
  moreUsernames: number;
  dirty: boolean;
}

/**
 * Refused logins are audited as one entry per address, minute, tenant and reason with a growing
 * `details.count`, so a client guessing as fast as it can adds a couple of rows a minute, not hundreds
 * a second. A tally's first refusal is written before the answer, later counts within a second (at once
 * when the audit log is read here). Each replica keeps its own.
 */
export class RefusedLogins {
  private readonly tallies = new Map<string, Tally>();
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly audit: Pick<AuditRepo, "tally">,
    private readonly logger: Logger,
    /** Counts each refusal (`runyard_login_refused_total{reason}`). */
    private readonly counted: (reason: LoginRefusal) => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {}

  /** Counts one refused login; resolves once a new tally is stored (later counts are batched). */
  async refused(login: RefusedLogin): Promise<void> {
    this.counted(login.reason);
    const now = this.now();
    const minute = Math.floor(now / 60_000);
    const tenantId = login.user?.tenant_id ?? null;
    let address: string | null = login.address;
    let key = `${minute}\u0000${address}\u0000${tenantId}\u0000${login.reason}`;
    if (!this.tallies.has(key) && this.tallies.size >= maxTallies) this.forgetWritten(minute);
    if (!this.tallies.has(key) && this.tallies.size >= maxTallies) {
      address = null;
      key = `${minute}\u0000\u0000${tenantId}\u0000${login.reason}`;
    }
    const at = new Date(now).toISOString();
    const tally = this.tallies.get(key);
    if (tally) {
      tally.count += 1;
      tally.lastAt = at;
      this.noteUsername(tally, login.username);
      tally.dirty = true;
      this.schedule();
      return;
    }
    const fresh: Tally = {
      id: newId("aud"),
      minute,
      at,
      lastAt: at,
      address,
      tenantId,
      reason: login.reason,
      actor: { user_id: login.user?.id ?? null, username: login.username },
      count: 1,
      usernames: new Set([login.username]),
      moreUsernames: 0,
      dirty: true,
    };
    this.tallies.set(key, fresh);
    await this.flush();
  }

  private forgetWritten(minute: number): void {
    for (const [key, tally] of this.tallies)
      if (tally.minute < minute && !tally.dirty) this.tallies.delete(key);
  }

  private noteUsername(tally: Tally, username: string): void {
    if (tally.usernames.has(username)) return;
    if (tally.usernames.size < maxUsernames) tally.usernames.add(username);
    else tally.moreUsernames += 1;
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, flushMs);
    this.timer.unref();
  }

  /** Writes every changed tally now, and forgets those of minutes past once written. */
  flush(): Promise<void> {
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }

  private async write(): Promise<void> {
    const minute = Math.floor(this.now() / 60_000);
    for (const tally of this.tallies.values()) {
      if (tally.dirty) {
        tally.dirty = false;
        try {
          await this.audit.tally(tally.id, {
            actor: { kind: null, token_id: null, ...tally.actor },
            tenant_id: tally.tenantId,
            address: tally.address,
            action: "login",
            target: tally.actor.username,
            outcome: "denied",
            at: tally.at,
            details: {
              reason: tally.reason,
              count: tally.count,
              last_at: tally.lastAt,
              usernames: [...tally.usernames],
              ...(tally.moreUsernames > 0 ? { more_usernames: tally.moreUsernames } : {}),
            },
          });
        } catch (error) {
          tally.dirty = true;
          this.schedule();
          this.logger.error({ err: error, action: "login" }, "audit entry not stored");
        }
      }
    }
    this.forgetWritten(minute);
  }

  /** Writes what is left (the server is stopping). */
  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
  }
}
