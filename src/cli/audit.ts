import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { printList } from "./table.js";

type AuditEventView = components["schemas"]["AuditEvent"];

export interface AuditFlags {
  json?: boolean;
  action?: string;
  limit?: string;
  tenant?: string;
  since?: string;
}

/** Who did it, as people read it: the username, else the token id, else the kind. */
function who(actor: AuditEventView["actor"]): string {
  return actor.username ?? actor.token_id ?? actor.kind ?? "-";
}

/** `runyard audit`: the newest entries of the audit log (admin tokens only), through the API. */
export async function auditList(flags: AuditFlags, ctx: CliContext): Promise<number> {
  const query = new URLSearchParams();
  if (flags.action) query.set("action", flags.action);
  if (flags.tenant) query.set("tenant", flags.tenant);
  if (flags.since) query.set("since", flags.since);
  if (flags.limit !== undefined) {
    const limit = Number(flags.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) {
      throw new RunyardError("USAGE", `--limit must be a whole number from 1 to 500, not ${flags.limit}`);
    }
    query.set("limit", String(limit));
  }
  const path = `/api/audit${query.size > 0 ? `?${query.toString()}` : ""}`;
  const page = await apiClient(ctx).request<{ events: AuditEventView[]; next: string | null }>("GET", path);
  return printList(ctx.stdout, page.events, {
    json: flags.json,
    empty: "no audit entries",
    header: ["AT", "ACTION", "OUTCOME", "ACTOR", "TARGET", "TENANT", "ADDRESS"],
    row: (e) => [
      e.at,
      e.action,
      e.outcome,
      who(e.actor),
      e.target ?? "-",
      e.tenant_id ?? "-",
      e.address ?? "-",
    ],
  });
}
