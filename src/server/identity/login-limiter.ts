import { RunyardError } from "../../core/errors.js";

/** Failed logins allowed per window, and how attempts past the wider ceilings are slowed. */
export interface LoginLimits {
  /**
   * Failures of one username from one address: past it that pair is refused (429) until the
   * oldest failure leaves the window. Only this ever refuses a login, a correct password included.
   */
  perUserAddress: number;
  /** Failures of one username from every address: past it each attempt for it waits `slowdownMs`. */
  perUser: number;
  /** Failures from one address for every username: past it each attempt from it waits `slowdownMs`. */
  perAddress: number;
  windowMs: number;
  slowdownMs: number;
}

/**
 * 5 failures a minute for one username from one address lock that pair; past 50 for a username
 * or 100 from an address, every attempt of it waits a second (docs/security.md).
 */
export const defaultLoginLimits: LoginLimits = {
  perUserAddress: 5,
  perUser: 50,
  perAddress: 100,
  windowMs: 60_000,
  slowdownMs: 1000,
};

/** Keys tracked at most; past it the oldest are dropped, so a flood of names cannot fill memory. */
const maxKeys = 50_000;

/**
 * Counts failed logins in a sliding window in this process's memory: spread over N replicas a client
 * gets N times the limit (argon2 keeps each guess slow anyway).
 *
 * Only a username from one address is ever locked: guesses behind one address (`runyard up`'s runner
 * steps, a NAT) must not lock another user out, nor guesses from elsewhere the user themselves. A
 * username guessed from many addresses, or an address guessing many, is slowed down instead.
 */
export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();

  constructor(
    private readonly limits: LoginLimits = defaultLoginLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Before checking a password: throws RATE_LIMITED (429) while this pair's failures are used up, else
   * counts a failure until `succeeded` (so parallel guesses are held to the limit too) and answers the
   * wait before checking (0, or `slowdownMs` past the username's or address's ceiling).
   */
  attempt(username: string, address: string): number {
    const now = this.now();
    const waitMs = this.wait(pairKey(username, address), this.limits.perUserAddress, now);
    if (waitMs > 0) {
      const retryAfter = Math.max(1, Math.ceil(waitMs / 1000));
      throw new RunyardError(
        "RATE_LIMITED",
        `too many failed logins for this user from this address; try again in ${retryAfter} s`,
        { details: { retry_after_seconds: retryAfter } },
      );
    }
    const slowed =
      this.recent(userKey(username), now).length >= this.limits.perUser ||
      this.recent(addressKey(address), now).length >= this.limits.perAddress;
    this.failed(username, address, now);
    return slowed ? this.limits.slowdownMs : 0;
  }

  private failed(username: string, address: string, now: number): void {
    for (const key of keysOf(username, address)) {
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

  /** Clears the pair's failures; the username's and address's lose only this one (others' still count). */
  succeeded(username: string, address: string): void {
    this.failures.delete(pairKey(username, address));
    this.failures.get(userKey(username))?.pop();
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
const pairKey = (username: string, address: string): string => `pair:${address} ${username.toLowerCase()}`;
const keysOf = (username: string, address: string): string[] => [
  pairKey(username, address),
  userKey(username),
  addressKey(address),
];
