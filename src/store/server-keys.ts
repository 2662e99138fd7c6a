import { createHash, randomBytes } from "node:crypto";
import { isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";

/** Keys the replicas of one database share (e.g. the one that signs session tokens). */
export interface ServerKeysRepo {
  /**
   * The server key of this name, generated (32 random bytes, base64url) by the first replica that
   * asks and stored sealed with the store's cipher; every replica gets the same one.
   */
  get(name: string): Promise<string>;
  /**
   * The install's id (16 hex digits): made once from a random value kept in the database, the same
   * for every replica and across restarts. Runners label their containers with it.
   */
  installId(): Promise<string>;
}

export function serverKeysRepo(ctx: StoreContext): ServerKeysRepo {
  const repo: ServerKeysRepo = {
    async get(name) {
      const stored = async () =>
        ctx.db.selectFrom("server_keys").select("value").where("name", "=", name).executeTakeFirst();
      let row = await stored();
      if (!row) {
        await ctx.db
          .insertInto("server_keys")
          .values({
            name,
            value: ctx.cipher.seal(randomBytes(32).toString("base64url")),
            created_at: isoTime(ctx.now()),
          })
          .onConflict((oc) => oc.column("name").doNothing())
          .execute();
        row = await stored();
      }
      if (!row) throw new Error(`server key ${name} could not be stored`);
      return ctx.cipher.open(row.value);
    },
    // A digest, so the label never shows the stored value itself.
    installId: async () =>
      createHash("sha256")
        .update(await repo.get("install"))
        .digest("hex")
        .slice(0, 16),
  };
  return repo;
}
