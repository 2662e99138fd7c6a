import { z } from "zod";
import type { BotRecord, Store, TenantBotAlertsRecord } from "../../store/index.js";
import { extrasOf } from "./bot-extras.js";
import { BotAlertSpec } from "./bot-spec.js";

/** A tenant's stored rules, read back through the form a bot's are checked against. */
export function tenantRulesOf(record: TenantBotAlertsRecord | undefined): {
  alerts: BotAlertSpec[];
  notify: string[];
} {
  if (!record) return { alerts: [], notify: [] };
  const alerts = z.array(BotAlertSpec).safeParse(record.alerts);
  return { alerts: alerts.success ? alerts.data : [], notify: record.notify };
}

/** What a bot is watched for: its own alerts, and its tenant's of kinds it has none of. */
export interface EffectiveAlerts {
  /** The bot's own alerts. */
  own: BotAlertSpec[];
  /** The tenant's alerts that apply to the bot (no alert of its own has their kind). */
  inherited: BotAlertSpec[];
  /** The tenant's alerts the bot's own of the same kind override. */
  overridden: BotAlertSpec[];
  /** Where they are told: the bot's own URLs, else the tenant's. */
  notify: string[];
  /** Whether `notify` is the tenant's. */
  notifyInherited: boolean;
}

/**
 * A bot's own rules override its tenant's kind by kind: a bot with a `memory` alert of its own is
 * not watched for the tenant's `memory` alert. Its own `notify` URLs, when it has any, replace the
 * tenant's for all its alerts.
 */
export function effectiveAlerts(
  bot: BotRecord,
  tenant: { alerts: BotAlertSpec[]; notify: string[] },
): EffectiveAlerts {
  const extras = extrasOf(bot);
  const ownKinds = new Set(extras.alerts.map((alert) => alert.kind));
  const applies = bot.tenant_id !== null;
  const inherited = applies ? tenant.alerts.filter((alert) => !ownKinds.has(alert.kind)) : [];
  const overridden = applies ? tenant.alerts.filter((alert) => ownKinds.has(alert.kind)) : [];
  const notifyInherited = extras.notify.length === 0 && applies && tenant.notify.length > 0;
  return {
    own: extras.alerts,
    inherited,
    overridden,
    notify: notifyInherited ? tenant.notify : extras.notify,
    notifyInherited,
  };
}

/** A bot's effective alerts, its tenant's rules read from the store. */
export async function effectiveAlertsOf(
  store: Pick<Store, "tenantBotAlerts">,
  bot: BotRecord,
): Promise<EffectiveAlerts> {
  const tenant = bot.tenant_id ? tenantRulesOf(await store.tenantBotAlerts.get(bot.tenant_id)) : undefined;
  return effectiveAlerts(bot, tenant ?? { alerts: [], notify: [] });
}
