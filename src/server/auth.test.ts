import { describe, expect, it } from "vitest";
import type { TokenRecord, TokensRepo } from "../store/index.js";
import { TokenCache } from "./auth.js";

function token(kind: TokenRecord["kind"]): TokenRecord {
  return {
    id: `tok_${kind}`,
    kind,
    name: kind,
    group: null,
    tenant_id: null,
    created_at: "2026-01-01T00:00:00.000Z",
    last_used_at: null,
    user_id: null,
    expires_at: null,
  };
}

/** Tokens found in a map that counts lookups. */
function countedTokens(tokens: Map<string, TokenRecord>) {
  const lookups: string[] = [];
  const repo: Pick<TokensRepo, "find"> = {
    find: async (secret: string) => {
      lookups.push(secret);
      return tokens.get(secret);
    },
  };
  return { repo, lookups };
}

describe("TokenCache", () => {
  it("asks the store once per token within its time, and again after", async () => {
    const tokens = new Map([["s-user", token("user")]]);
    const { repo, lookups } = countedTokens(tokens);
    let now = 0;
    const cache = new TokenCache(repo, 2000, () => now);
    expect(await cache.find("s-user")).toMatchObject({ kind: "user" });
    now = 1999;
    expect(await cache.find("s-user")).toMatchObject({ kind: "user" });
    expect(lookups).toEqual(["s-user"]);
    // Revoked in the database: it works here until the cached answer lapses, then no more.
    tokens.delete("s-user");
    now = 2000;
    expect(await cache.find("s-user")).toBeUndefined();
    expect(lookups).toEqual(["s-user", "s-user"]);
  });

  it("keeps neither misses nor runner tokens", async () => {
    const tokens = new Map([["s-runner", token("runner")]]);
    const { repo, lookups } = countedTokens(tokens);
    const cache = new TokenCache(repo, 2000, () => 0);
    expect(await cache.find("nope")).toBeUndefined();
    tokens.set("nope", token("admin"));
    expect(await cache.find("nope")).toMatchObject({ kind: "admin" });
    await cache.find("s-runner");
    await cache.find("s-runner");
    expect(lookups).toEqual(["nope", "nope", "s-runner", "s-runner"]);
  });
});
