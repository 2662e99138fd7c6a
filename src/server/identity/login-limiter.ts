import { RunyardError } from "../../core/errors.js";

/** Failed logins allowed per window: per username, and per client address. */
export interface LoginLimits {
  perUser: number;
  perAddress: number;
  windowMs: number;
}

/** 5 failures a minute for one username, 20 for one address (docs/security.md). */
export const defaultLoginLimits: LoginLimits = { perUser: 5, perAddress: 20, windowMs: 60_000 };

/** Keys tracked at most; past it the oldest are dropped, so a flood of names cannot fill memory. */
const maxKeys = 50_000;

/**
 * Counts failed logins in a sliding window, in this process's memory: each replica counts its
 * own (a client that spreads attempts over N replicas gets N times the limit; argon2 keeps each
 * guess slow anyway). A success clears its username's failures.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: LoginLimits = defaultLoginLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Call before checking a password: throws RATE_LIMITED (429) while the username or the address
   * has used up its failures, else counts this attempt as a failure until `succeeded` says it was
   * not, so a burst of parallel guesses is held to the limit too.
   */
  attempt(username: string, address: string): void {
    this.check(username, address);
    this.failed(username, address);
  }

  private check(username: string, address: string): void {
    const now = this.now();
    const waits = [
      this.wait(userKey(username), this.limits.perUser, now),
      this.wait(addressKey(address), this.limits.perAddress, now),
    ];
    const waitMs = Math.max(...waits);
    if (waitMs <= 0) return;
    const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
    throw new RunyardError(
      "RATE_LIMITED",
      (waits[0] ?? 0) > 0
        ? `too many failed logins for this user; try again in ${retryAfter} s`
        : `too many failed logins from this address; try again in ${retryAfter} s`,
      { details: { retry_after_seconds: retryAfter } },
    );
  }

  private failed(username: string, address: string): void {
    const now = this.now();
    for (const key of [userKey(username), addressKey(address)]) {
      const times = this.recent(key, now);
      times.push(now);
      this.failures.delete(key);
      this.failures.set(key, times);
    }
    while (this.failures.size > maxKeys) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  /** The attempt was right: the username's failures are cleared, and the address's count loses this one. */
  succeeded(username: string, address: string): void {
    this.failures.delete(userKey(username));
    this.failures.get(addressKey(address))?.pop();
  }

  private recent(key: string, now: number): number[] {
    return (this.failures.get(key) ?? []).filter((at) => now - at < this.limits.windowMs);
  }

  /** Milliseconds until one more failure is allowed for this key; 0 or less when it is now. */
  private wait(key: string, limit: number, now: number): number {
    const times = this.recent(key, now);
    if (times.length < limit) return 0;
    const oldestCounted = times[times.length - limit] ?? now;
    return oldestCounted + this.limits.windowMs - now;
  }
}

const userKey = (username: string): string => `user:${username.toLowerCase()}`;
const addressKey = (address: string): string => `addr:${address}`;
