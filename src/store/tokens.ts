import { createHash } from "node:crypto";
import type { Selectable } from "kysely";
import { RunyardError } from "../core/errors.js";
import { newId, newSecret } from "../core/ids.js";
import { isoTime } from "./columns.js";
import { type StoreContext, writeUnique } from "./dialect.js";
import type { TokensTable } from "./schema.js";

export type TokenKind = "admin" | "user" | "runner";

/** An API token. The secret itself is never stored, only its SHA-256 hash. */
export type TokenRecord = Omit<Selectable<TokensTable>, "group_name" | "secret_hash"> & {
  /** Runner tokens: the group a runner holding it joins. Null otherwise. */
  group: string | null;
};

/** Filters for `tokens.list`; tokens come oldest first. */
export interface ListTokensQuery {
  kind?: TokenKind;
  /** Only the tokens this user owns. */
  userId?: string;
  /** Only the tokens of this tenant (`null`: outside any tenant). */
  tenantId?: string | null;
}

/** What `tokens.create` needs. */
export interface NewToken {
  kind: TokenKind;
  name: string;
  group?: string | null;
  tenant_id?: string | null;
  /** The user who owns a personal token. */
  user_id?: string | null;
  /** When it stops working; absent or null: never. */
  expires_at?: string | null;
  /** A secret to store (e.g. RUNYARD_ADMIN_TOKEN); defaults to a fresh `newSecret("ryt")`. */
  secret?: string;
}

/** A new token and its secret; the only time the secret is seen. */
export interface CreatedToken {
  record: TokenRecord;
  secret: string;
}

/** `last_used_at` is written at most this often, so checking a token is not a write per request. */
const lastUsedResolutionMs = 60_000;

/**
 * Tokens are looked up by the hash of the secret, so no secret is ever compared byte by byte
 * (nothing to time) and the database holds nothing that would let a reader authenticate.
 * The secrets are random, so a plain SHA-256 is enough; there is nothing to brute-force.
 */
function hashSecret(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex");
}

/** A token's columns as its record names them. */
const recordColumns = [
  "id",
  "kind",
  "name",
  "group_name as group",
  "tenant_id",
  "created_at",
  "last_used_at",
  "user_id",
  "expires_at",
] as const;

/** The API tokens (admin, user, runner); only their hashes are stored. */
export interface TokensRepo {
  /** Creates a token and returns its secret; a secret already in use is a CONFLICT. */
  create(input: NewToken): Promise<CreatedToken>;
  /** The token with this secret, looked up by its hash (no secret comparison to time), or undefined. */
  find(secret: string): Promise<TokenRecord | undefined>;
  /** The token with this id (expired or not), or undefined. */
  get(id: string): Promise<TokenRecord | undefined>;
  /** Tokens of a kind (or filtered), oldest first (no secrets: they are not stored). */
  list(query?: TokenKind | ListTokensQuery): Promise<TokenRecord[]>;
  /** Deletes a token, keeping whose it was (`owner`); false when there was none. */
  revoke(id: string): Promise<boolean>;
  /**
   * Whose the token with this id is or was, revoked since too: its user (null: a token of no
   * user); undefined for an id that was never a token's (or whose user was removed since).
   */
  owner(id: string): Promise<{ user_id: string | null } | undefined>;
  /** How many tokens there are (of a kind). */
  count(kind?: TokenKind): Promise<number>;
}

export function tokensRepo(ctx: StoreContext): TokensRepo {
  return {
    async create(input) {
      const secret = input.secret ?? newSecret("ryt");
      if (secret.length === 0) throw new RunyardError("INVALID_INPUT", "a token secret cannot be empty");
      const record: TokenRecord = {
        id: newId("tok"),
        kind: input.kind,
        name: input.name,
        group: input.group ?? null,
        tenant_id: input.tenant_id ?? null,
        created_at: isoTime(ctx.now()),
        last_used_at: null,
        user_id: input.user_id ?? null,
        expires_at: input.expires_at ? isoTime(input.expires_at) : null,
      };
      const { group, ...rest } = record;
      await writeUnique(
        ctx,
        () =>
          ctx.db
            .insertInto("tokens")
            .values({ ...rest, group_name: group, secret_hash: hashSecret(secret) })
            .execute(),
        (cause) =>
          new RunyardError("CONFLICT", "a token with this secret exists already", {
            hint: "Use a different secret, or none to get a generated one.",
            cause,
          }),
      );
      return { record, secret };
    },
    async find(secret) {
      if (secret.length === 0) return undefined;
      const row = await ctx.db
        .selectFrom("tokens")
        .select(recordColumns)
        .where("secret_hash", "=", hashSecret(secret))
        .executeTakeFirst();
      if (!row) return undefined;
      const now = ctx.now();
      if (row.expires_at !== null && Date.parse(row.expires_at) <= now.getTime()) return undefined;
      const lastUsed = row.last_used_at === null ? 0 : Date.parse(row.last_used_at);
      if (now.getTime() - lastUsed >= lastUsedResolutionMs && !ctx.writes?.refused) {
        row.last_used_at = isoTime(now);
        await ctx.db
          .updateTable("tokens")
          .set({ last_used_at: row.last_used_at })
          .where("id", "=", row.id)
          .execute();
      }
      return row;
    },
    async get(id) {
      return ctx.db.selectFrom("tokens").select(recordColumns).where("id", "=", id).executeTakeFirst();
    },
    async list(query = {}) {
      const { kind, userId, tenantId } = typeof query === "string" ? { kind: query } : query;
      let select = ctx.db.selectFrom("tokens").select(recordColumns);
      if (kind !== undefined) select = select.where("kind", "=", kind);
      if (userId !== undefined) select = select.where("user_id", "=", userId);
      if (tenantId !== undefined)
        select = select.where("tenant_id", tenantId === null ? "is" : "=", tenantId);
      return select.orderBy("created_at").orderBy("id").execute();
    },
    async revoke(id) {
      return ctx.db.transaction().execute(async (tx) => {
        const token = await tx.selectFrom("tokens").select("user_id").where("id", "=", id).executeTakeFirst();
        if (!token) return false;
        await tx.deleteFrom("tokens").where("id", "=", id).execute();
        // Whose it was outlives it: what it made (a hook, a schedule) still triggers that user's runs.
        await tx
          .insertInto("revoked_tokens")
          .values({ id, user_id: token.user_id, revoked_at: isoTime(ctx.now()) })
          .onConflict((oc) => oc.column("id").doNothing())
          .execute();
        return true;
      });
    },
    async owner(id) {
      const live = await ctx.db
        .selectFrom("tokens")
        .select("user_id")
        .where("id", "=", id)
        .executeTakeFirst();
      if (live) return { user_id: live.user_id };
      return ctx.db.selectFrom("revoked_tokens").select("user_id").where("id", "=", id).executeTakeFirst();
    },
    async count(kind) {
      let select = ctx.db.selectFrom("tokens").select((eb) => eb.fn.countAll<number | string>().as("count"));
      if (kind !== undefined) select = select.where("kind", "=", kind);
      const row = await select.executeTakeFirstOrThrow();
      return Number(row.count);
    },
  };
}
