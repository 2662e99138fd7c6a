import type { Logger } from "../../core/logger.js";
import type { RevokedCredential } from "../../store/fleet-link.js";
import type { JobRecord, Store, TokenRecord } from "../../store/index.js";
import { credentialLives, type Principal, TokenCache } from "../auth.js";
import type { StreamCredential } from "../sse.js";

/** What revocation reaches on this replica besides the store. */
export interface RevocationDeps {
  store: Pick<Store, "tokens" | "users" | "sessions" | "runners" | "jobs">;
  /** The runner sockets of this replica. */
  hub: { revokeToken(tokenId: string): Promise<string[]>; connectedTokens(): string[] };
  /** Ends a job whose runner is gone (retried or interrupted as its run says). */
  lost(job: JobRecord, why: string): Promise<void>;
  /** Tells the other replicas (PostgreSQL); a lost message is made up by `sweep`. */
  tell(revoked: RevokedCredential): void;
  logger: Logger;
}

interface OpenStream {
  principal: Principal;
  lives: () => Promise<boolean>;
  end: () => void;
}

/**
 * Makes a revoked credential stop everywhere at once (docs/security.md): a runner token's sockets close
 * and their jobs end; a revoked token, removed user, password change or logout empties the token cache
 * and ends its event streams. The replica that changed the store acts and tells the others, which act on
 * the store's word only (anyone who may connect to PostgreSQL can send a fleet message).
 */
export class Revocations {
  /** User and admin tokens found in the last 2 s, so a request is not a database lookup. */
  readonly tokens: TokenCache;
  private readonly streams = new Set<OpenStream>();

  constructor(private readonly deps: RevocationDeps) {
    this.tokens = new TokenCache(deps.store.tokens);
  }

  /** The credential behind an event stream: it ends when that credential is revoked. */
  streamCredential(principal: Principal): StreamCredential {
    const openedAtMs = Date.now();
    const lives = (): Promise<boolean> => credentialLives(this.deps.store, principal, openedAtMs);
    return {
      hold: (end) => {
        const stream: OpenStream = { principal, lives, end };
        this.streams.add(stream);
        return () => this.streams.delete(stream);
      },
      lives,
    };
  }

  /**
   * A token deleted here stops on this replica now, then on the others. Its runners connected nowhere
   * lose their jobs now, not when their leases lapse: they can never come back with them.
   */
  async tokenRevoked(token: TokenRecord): Promise<void> {
    await this.spread({ credential: "token", id: token.id });
    if (token.kind !== "runner") return;
    for (const runner of await this.deps.store.runners.list({ status: "offline" })) {
      if (runner.token_id !== token.id) continue;
      for (const job of await this.deps.store.jobs.list({
        runnerId: runner.id,
        statuses: ["assigned", "running"],
      }))
        await this.deps.lost(job, `runner ${runner.id}'s token was revoked`);
    }
  }

  /** A user was removed, or their password changed: their sessions (and, removed, tokens) stop. */
  userChanged(userId: string): Promise<void> {
    return this.spread({ credential: "user", id: userId });
  }

  /** A session was logged out. */
  sessionEnded(sessionId: string): Promise<void> {
    return this.spread({ credential: "session", id: sessionId });
  }

  private async spread(revoked: RevokedCredential): Promise<void> {
    await this.revoked(revoked);
    this.deps.tell(revoked);
  }

  /** Acts on a revocation told by any replica, this one included, as far as the store agrees. */
  async revoked({ credential, id }: RevokedCredential): Promise<void> {
    this.tokens.forget();
    if (credential === "token" && !(await this.deps.store.tokens.get(id)))
      await this.deps.hub.revokeToken(id);
    const field = credential === "token" ? "token_id" : credential === "user" ? "user_id" : "session_id";
    await this.endDeadStreams((principal) => principal[field] === id);
  }

  /** For a lost fleet message: closes sockets here whose runner token is gone (streams: each keep-alive). */
  async sweep(): Promise<void> {
    for (const tokenId of this.deps.hub.connectedTokens()) {
      if (!(await this.deps.store.tokens.get(tokenId))) await this.deps.hub.revokeToken(tokenId);
    }
  }

  private async endDeadStreams(matches: (principal: Principal) => boolean): Promise<void> {
    for (const stream of [...this.streams]) {
      if (!matches(stream.principal)) continue;
      if (await stream.lives()) continue;
      this.streams.delete(stream);
      stream.end();
    }
  }
}
