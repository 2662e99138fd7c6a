import type { Store } from "../store/index.js";
import { type Principal, tenantPrincipal } from "./auth.js";

/**
 * Who a stored `created_by` (a token or user) is. Role and tenant are read now, not when it was stored,
 * so a user made a member since acts as one; a token or user gone has no rights at all.
 */
export interface Actor {
  role: "admin" | "member";
  tenant_id: string | null;
  /** The user behind the id: the user itself, or the personal token's owner; null for others. */
  user_id: string | null;
}

export async function actorOf(
  store: Pick<Store, "tokens" | "users">,
  id: string | null,
): Promise<Actor | undefined> {
  if (id === null) return undefined;
  const token = await store.tokens.get(id);
  if (token) {
    if (token.user_id === null) {
      return { role: token.kind === "admin" ? "admin" : "member", tenant_id: token.tenant_id, user_id: null };
    }
    const owner = await store.users.get(token.user_id);
    return owner ? { role: owner.role, tenant_id: owner.tenant_id, user_id: owner.id } : undefined;
  }
  const user = await store.users.get(id);
  return user ? { role: user.role, tenant_id: user.tenant_id, user_id: user.id } : undefined;
}

/**
 * Whose a stored id is, for what it triggers to count as theirs (quota, budget, "you submitted this"):
 * a token's user, of a revoked token too (unlike `actorOf`), or the user it is; else null.
 */
export async function userBehind(
  store: Pick<Store, "tokens" | "users">,
  id: string | null,
): Promise<string | null> {
  if (id === null) return null;
  const token = await store.tokens.owner(id);
  if (token) return token.user_id;
  return (await store.users.get(id)) ? id : null;
}

/**
 * Whether a trigger's maker is neither a user nor a token (revoked ones are kept until their user goes).
 * A removed user's triggers start nothing: their runs would be held to no one's quota or budget, and a
 * `self_approval: false` gate would refuse every approver.
 */
export async function makerRemoved(
  store: Pick<Store, "tokens" | "users">,
  id: string | null,
): Promise<boolean> {
  if (id === null) return false;
  return !(await store.tokens.owner(id)) && !(await store.users.get(id));
}

/**
 * Who a triggered run (a delivery, a tick, a call's child) is for the quotas: a member of the trigger's
 * tenant and its maker's user (through a revoked token too), held to that user's limits as submits are.
 */
export async function triggerQuotaPrincipal(
  store: Pick<Store, "tokens" | "users">,
  tenantId: string | null,
  makerId: string | null,
): Promise<Principal> {
  const userId = await userBehind(store, makerId);
  const user = userId === null ? undefined : await store.users.get(userId);
  const principal = tenantPrincipal(tenantId);
  return user ? { ...principal, user_id: user.id, username: user.username } : principal;
}

/** A platform admin (an admin outside any tenant): its runs may call any destination. */
export function isPlatformAdminActor(actor: Actor | undefined): boolean {
  return actor?.role === "admin" && actor.tenant_id === null;
}

/**
 * Whether `principal` may act for `ownerId`'s trigger in `tenantId`: that tenant's or a platform admin
 * for anyone's; anyone else for their own (the same token or user, or a token of theirs, revoked too).
 */
export async function mayActFor(
  store: Pick<Store, "tokens" | "users">,
  principal: Principal,
  ownerId: string | null,
  tenantId: string | null,
): Promise<boolean> {
  if (principal.kind === "stream" || principal.kind === "runner") return false;
  if (principal.role === "admin" && (principal.tenant_id === null || principal.tenant_id === tenantId))
    return true;
  if (ownerId === null) return false;
  if (ownerId === principal.token_id || ownerId === principal.user_id) return true;
  if (principal.user_id === null) return false;
  return (await userBehind(store, ownerId)) === principal.user_id;
}

/** A hook, schedule or forge of a user's, named as `runyard hook list`, `schedule list` and `forge list` show it. */
export interface UserTrigger {
  kind: "hook" | "schedule" | "forge";
  /** The hook's name, the schedule's cron, or the forge's kind and repo. */
  name: string;
  /** The saved workflow it runs; null for a forge (its tasks are agent runs). */
  workflow: string | null;
}

/** `user`'s triggers (made or promoted through any token, revoked too), to say at removal what stops. */
export async function triggersOfUser(
  store: Pick<Store, "tokens" | "users" | "hooks" | "schedules" | "savedWorkflows" | "forges">,
  user: { id: string; tenant_id: string | null },
): Promise<UserTrigger[]> {
  const theirs = async (id: string | null) => (await userBehind(store, id)) === user.id;
  // A platform admin may make triggers in any tenant; anyone else only in their own.
  const where = user.tenant_id ?? undefined;
  const found: UserTrigger[] = [];
  for (const hook of await store.hooks.list(where)) {
    if (await theirs(hook.created_by)) found.push({ kind: "hook", name: hook.name, workflow: hook.workflow });
  }
  for (const schedule of await store.schedules.list(where)) {
    const owner =
      schedule.owner ??
      (await store.savedWorkflows.get(schedule.tenant_id, schedule.workflow_name, schedule.workflow_version))
        ?.created_by ??
      null;
    if (await theirs(owner))
      found.push({ kind: "schedule", name: schedule.cron, workflow: schedule.workflow_name });
  }
  for (const forge of await store.forges.list(where)) {
    if (await theirs(forge.created_by)) found.push({ kind: "forge", name: forgeName(forge), workflow: null });
  }
  return found;
}

/** A forge as its removal notice and refusal name it: its kind and repo (`github acme/app`). */
export function forgeName(forge: { kind: string; repo: string }): string {
  return `${forge.kind} ${forge.repo}`;
}
