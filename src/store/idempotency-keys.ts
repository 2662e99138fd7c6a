import { randomUUID } from "node:crypto";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";

/** One creating request's key, as a caller sends it: whose, which, and what was asked. */
export interface IdempotencyRequest {
  /** The caller the key belongs to: `user:<id>`, or `token:<id>` for a token without a user. */
  owner: string;
  key: string;
  /** Hex SHA-256 of the request body's canonical JSON. */
  request_hash: string;
  /** How long the key is kept after its first claim. */
  keep_ms: number;
  /** A claim not answered after this long is presumed dead (its server crashed) and taken over. */
  claim_timeout_ms: number;
}

/** A 2xx answer given to a key, kept to be given again. */
export interface IdempotentAnswer {
  status: number;
  body: string;
}

/** What a claim found. */
export type IdempotencyClaim =
  /** The caller serves the request; it then `complete`s or `release`s the claim by its id. */
  | { state: "claimed"; claim_id: string }
  /** The key was answered: give that answer again. */
  | { state: "answered"; answer: IdempotentAnswer }
  /** The key was sent before with another body. */
  | { state: "reused" }
  /** The first request with the key is still being served. */
  | { state: "in_use" };

/** The `Idempotency-Key`s of creating requests, per caller, and the answers they were given. */
export interface IdempotencyKeysRepo {
  /**
   * Claims a key, insert first: whoever inserts the row serves the request, on any replica sharing
   * the database, and everyone else reads the row. An expired row, or a claim left unanswered past
   * its timeout, is deleted first, so its key can be claimed again (each deleter and inserter races
   * on the primary key, and one wins).
   */
  claim(request: IdempotencyRequest): Promise<IdempotencyClaim>;
  /** Keeps the 2xx answer of a claim; false when the claim was taken over meanwhile. */
  complete(owner: string, key: string, claimId: string, answer: IdempotentAnswer): Promise<boolean>;
  /** Frees a claim whose request failed, so the key may be sent again. */
  release(owner: string, key: string, claimId: string): Promise<void>;
  /** Deletes the keys kept past their time; answers how many. */
  prune(): Promise<number>;
}

export function idempotencyKeysRepo(ctx: StoreContext): IdempotencyKeysRepo {
  const repo: IdempotencyKeysRepo = {
    async claim(request) {
      const now = ctx.now();
      const stale = isoTime(new Date(now.getTime() - request.claim_timeout_ms));
      await ctx.db
        .deleteFrom("idempotency_keys")
        .where("owner", "=", request.owner)
        .where("key", "=", request.key)
        .where((row) =>
          row.or([
            row("expires_at", "<=", isoTime(now)),
            row.and([row("status", "is", null), row("claimed_at", "<", stale)]),
          ]),
        )
        .execute();
      const claimId = randomUUID();
      const inserted = await ctx.db
        .insertInto("idempotency_keys")
        .values({
          owner: request.owner,
          key: request.key,
          request_hash: request.request_hash,
          claim_id: claimId,
          claimed_at: isoTime(now),
          expires_at: isoTime(new Date(now.getTime() + request.keep_ms)),
        })
        .onConflict((conflict) => conflict.columns(["owner", "key"]).doNothing())
        .returning("claim_id")
        .executeTakeFirst();
      if (inserted) return { state: "claimed", claim_id: claimId };
      const held = await ctx.db
        .selectFrom("idempotency_keys")
        .select(["request_hash", "status", "response"])
        .where("owner", "=", request.owner)
        .where("key", "=", request.key)
        .executeTakeFirst();
      // Released between the insert and this read (its request failed): claim it again.
      if (!held) return repo.claim(request);
      if (held.request_hash !== request.request_hash) return { state: "reused" };
      if (held.status === null || held.response === null) return { state: "in_use" };
      return { state: "answered", answer: { status: held.status, body: held.response } };
    },
    async complete(owner, key, claimId, answer) {
      const result = await ctx.db
        .updateTable("idempotency_keys")
        .set({ status: answer.status, response: answer.body })
        .where("owner", "=", owner)
        .where("key", "=", key)
        .where("claim_id", "=", claimId)
        .executeTakeFirst();
      return result.numUpdatedRows > 0n;
    },
    async release(owner, key, claimId) {
      await ctx.db
        .deleteFrom("idempotency_keys")
        .where("owner", "=", owner)
        .where("key", "=", key)
        .where("claim_id", "=", claimId)
        .where("status", "is", null)
        .execute();
    },
    async prune() {
      const result = await ctx.db
        .deleteFrom("idempotency_keys")
        .where("expires_at", "<=", isoTime(ctx.now()))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
  };
  return repo;
}
