import type { Store } from "../../store/index.js";

/**
 * The names behind runs' `created_by` (an API token's id, or a session user's id), so people see
 * who started a run instead of an id: a personal token or a session reads as its user's name, a
 * token that no user owns as the name it was given. A personal token revoked since still reads as
 * its user's name (revoked tokens keep their user, until that user is removed); an id found
 * nowhere (a removed user, a revoked token of no user) has no name.
 */
export async function submitterNames(
  store: Pick<Store, "tokens" | "users">,
  ids: Iterable<string | null>,
): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  for (const id of new Set(ids)) {
    if (id === null) continue;
    const name = await submitterName(store, id);
    if (name !== undefined) names.set(id, name);
  }
  return names;
}

async function submitterName(
  store: Pick<Store, "tokens" | "users">,
  id: string,
): Promise<string | undefined> {
  const token = await store.tokens.get(id);
  if (token) {
    const owner = token.user_id ? await store.users.get(token.user_id) : undefined;
    return owner?.username ?? token.name;
  }
  const user = await store.users.get(id);
  if (user) return user.username;
  const revoked = (await store.tokens.owner(id))?.user_id;
  return revoked ? (await store.users.get(revoked))?.username : undefined;
}
