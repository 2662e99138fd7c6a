import type { components } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { apiClient } from "./api-client.js";
import { alertFlag } from "./bot-history.js";
import type { CliContext } from "./context.js";
import { printJson } from "./table.js";

type TenantBotAlerts = components["schemas"]["TenantBotAlerts"];

const tenantPath = (tenant: string): string => `/api/bot-alerts/tenants/${encodeURIComponent(tenant)}`;

function print(answer: TenantBotAlerts, flags: { json?: boolean }, ctx: CliContext): number {
  if (flags.json) return printJson(ctx.stdout, answer);
  if (answer.alerts.length === 0) {
    ctx.stdout.write(
      `tenant ${answer.tenant} has no bot alert rules; set them with \`runyard tenant bot-alerts set ${answer.tenant} --alert unhealthy --notify URL\`\n`,
    );
    return 0;
  }
  ctx.stdout.write(`alerts: ${answer.alerts.map((alert) => JSON.stringify(alert)).join(", ")}\n`);
  ctx.stdout.write(`notify: ${answer.notify.join(", ") || "-"}\n`);
  ctx.stdout.write(`set ${answer.updated_at ?? "-"} by ${answer.updated_by ?? "-"}\n`);
  return 0;
}

/** `runyard tenant bot-alerts show TENANT`: the rules every bot of the tenant is watched for. */
export async function tenantBotAlertsShow(
  tenant: string,
  flags: { json?: boolean },
  ctx: CliContext,
): Promise<number> {
  return print(await apiClient(ctx).request<TenantBotAlerts>("GET", tenantPath(tenant)), flags, ctx);
}

/** `runyard tenant bot-alerts set TENANT --alert RULE... --notify URL...` (its admins). */
export async function tenantBotAlertsSet(
  tenant: string,
  flags: { alert?: string[]; notify?: string[]; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const alerts = (flags.alert ?? []).map(alertFlag);
  if (alerts.length === 0) {
    throw new RunyardError(
      "USAGE",
      "give at least one --alert (memory>80%/5m, restarts>=3/10m or unhealthy)",
      { hint: `To remove the tenant's rules: runyard tenant bot-alerts clear ${tenant}.` },
    );
  }
  if ((flags.notify ?? []).length === 0) {
    throw new RunyardError("USAGE", "--alert needs somewhere to say it: add --notify URL", {
      hint: "For example --notify https://hooks.example.com/bots.",
    });
  }
  const answer = await apiClient(ctx).request<TenantBotAlerts>("PUT", tenantPath(tenant), {
    alerts,
    notify: flags.notify,
  });
  return print(answer, flags, ctx);
}

/** `runyard tenant bot-alerts clear TENANT`: bots keep only their own alerts. */
export async function tenantBotAlertsClear(tenant: string, ctx: CliContext): Promise<number> {
  await apiClient(ctx).request<TenantBotAlerts>("DELETE", tenantPath(tenant));
  ctx.stderr.write(`tenant ${tenant}'s bot alert rules removed; bots keep their own\n`);
  return 0;
}
