import type { Selectable } from "kysely";
import { newId } from "../core/ids.js";
import { decodeJson, encodeJson, isoTime } from "./columns.js";
import type { StoreContext } from "./dialect.js";
import { newestFirstPage, type PageQuery } from "./paging.js";
import type { AuditEventsTable } from "./schema.js";

/** What the audit log records: logins, token, user and secret changes, cancels. */
export type AuditAction =
  | "login"
  | "logout"
  | "token.create"
  | "token.revoke"
  | "user.add"
  | "user.remove"
  | "user.passwd"
  | "secret.set"
  | "secret.rm"
  | "run.cancel"
  | "run.approve"
  | "run.reject"
  | "bot.start"
  | "bot.stop"
  | "bot.rm"
  | "bot.update"
  | "bot.rollback"
  | "bot.env"
  | "workflow.save"
  | "workflow.rm"
  | "workflow.promote"
  | "hook.create"
  | "forge.add"
  | "forge.rm"
  | "hook.rm";

export type AuditOutcome = "ok" | "denied" | "failed";

/** Who did it: the principal's kind and ids (null when unknown, e.g. a failed login). */
export interface AuditActor {
  kind: string | null;
  user_id: string | null;
  token_id: string | null;
  username: string | null;
}

/** One entry of the audit log; `details` never holds a password, token secret or secret value. */
export interface AuditEvent {
  id: string;
  at: string;
  actor: AuditActor;
  /** The tenant the action was in (the target's, else the actor's); null: outside any tenant. */
  tenant_id: string | null;
  /** The client address the request came from. */
  address: string | null;
  action: AuditAction;
  /** What it was done to: a username, token id, secret name or run id. */
  target: string | null;
  outcome: AuditOutcome;
  details: Record<string, unknown>;
}

export type NewAuditEvent = Omit<AuditEvent, "id" | "at"> & { at?: string };

/** Filters and paging for `audit.list`; entries come newest first (`at` desc, then `id` desc). */
export interface ListAuditQuery extends PageQuery {
  action?: AuditAction;
  /** Only entries about this target (a username, token id, secret name or run id). */
  target?: string;
  /** One tenant's entries; `null` for those outside any tenant; absent for all. */
  tenantId?: string | null;
  /** Only entries at or after this instant. */
  since?: string;
}

export interface AuditPage {
  events: AuditEvent[];
  next?: string;
}

const pagedAudit = { table: "audit_events", time: "at", noun: "audit entry" } as const;

let lastId = "";

/**
 * A time-ordered id that also sorts after every id this process made before, so entries made in
 * the same millisecond still list in the order they happened (`at`, then `id`).
 */
function nextAuditId(): string {
  let id = newId("aud");
  if (id <= lastId) id = `${lastId}0`;
  lastId = id;
  return id;
}

function toAuditEvent(row: Selectable<AuditEventsTable>): AuditEvent {
  return {
    id: row.id,
    at: row.at,
    actor: {
      kind: row.actor_kind,
      user_id: row.actor_user_id,
      token_id: row.actor_token_id,
      username: row.actor_username,
    },
    tenant_id: row.tenant_id,
    address: row.address,
    action: row.action as AuditAction,
    target: row.target,
    outcome: row.outcome,
    details: decodeJson<Record<string, unknown>>(row.details),
  };
}

function auditRow(ctx: StoreContext, id: string, input: NewAuditEvent): Selectable<AuditEventsTable> {
  return {
    id,
    at: isoTime(input.at ?? ctx.now()),
    actor_kind: input.actor.kind,
    actor_user_id: input.actor.user_id,
    actor_token_id: input.actor.token_id,
    actor_username: input.actor.username,
    tenant_id: input.tenant_id,
    address: input.address,
    action: input.action,
    target: input.target,
    outcome: input.outcome,
    details: encodeJson(input.details ?? {}),
  };
}

/** The audit log: who logged in, changed tokens, users and secrets, cancelled runs. */
export interface AuditRepo {
  /** Adds an entry to the audit log and returns it. */
  append(input: NewAuditEvent): Promise<AuditEvent>;
  /**
   * Writes an entry that counts repeats (refused logins of one client in one minute): the first
   * call with `id` inserts it, each later one replaces its `details` (the count) in place.
   */
  tally(id: string, input: NewAuditEvent): Promise<void>;
  /** Deletes the entries older than `before` (`audit.retention_days`); returns how many. */
  prune(before: string): Promise<number>;
  /** Audit entries, newest first, filtered and paged. */
  list(query?: ListAuditQuery): Promise<AuditPage>;
}

export function auditRepo(ctx: StoreContext): AuditRepo {
  return {
    async append(input) {
      const row = auditRow(ctx, nextAuditId(), input);
      await ctx.db.insertInto("audit_events").values(row).execute();
      return toAuditEvent(row);
    },
    async tally(id, input) {
      const row = auditRow(ctx, id, input);
      await ctx.db
        .insertInto("audit_events")
        .values(row)
        .onConflict((oc) => oc.column("id").doUpdateSet({ details: row.details }))
        .execute();
    },
    async prune(before) {
      const result = await ctx.db
        .deleteFrom("audit_events")
        .where("at", "<", isoTime(before))
        .executeTakeFirst();
      return Number(result.numDeletedRows);
    },
    async list(query = {}) {
      let select = ctx.db.selectFrom("audit_events").selectAll();
      if (query.action !== undefined) select = select.where("action", "=", query.action);
      if (query.target !== undefined) select = select.where("target", "=", query.target);
      if (query.tenantId !== undefined)
        select = select.where("tenant_id", query.tenantId === null ? "is" : "=", query.tenantId);
      if (query.since !== undefined) select = select.where("at", ">=", isoTime(query.since));
      const { rows, next } = await newestFirstPage(ctx, pagedAudit, select, query);
      const events = rows.map(toAuditEvent);
      return next === undefined ? { events } : { events, next };
    },
  };
}
