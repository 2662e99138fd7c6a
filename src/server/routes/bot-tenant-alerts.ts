import type { FastifyInstance } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { apiSchemas, NoQuery, refuseBodyFields } from "../api-schemas.js";
import { callerOf, type Principal } from "../auth.js";
import { BotAlertSpec, BotNotifyUrls } from "../bots/bot-spec.js";
import { tenantRulesOf } from "../bots/tenant-alerts.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses } from "../error-responses.js";
import { readableTenant } from "./budgets.js";

export const SetTenantBotAlertsBody = z.strictObject({
  alerts: z
    .array(BotAlertSpec)
    .max(10)
    .describe("watched on every bot of the tenant that has no alert of the same kind of its own"),
  notify: BotNotifyUrls.default([]).describe(
    "told of the tenant's bots' alerts when a bot has no notify URLs of its own (the server's `notify_hosts:` rules apply)",
  ),
});

const TenantBotAlertsView = z.object({
  tenant: z.string(),
  alerts: z.array(BotAlertSpec),
  notify: z.array(z.string()),
  updated_at: z.string().nullable().describe("null: none set"),
  updated_by: z.string().nullable(),
});
apiSchemas.add(TenantBotAlertsView, { id: "TenantBotAlerts" });

const TenantParams = z.object({ tenant: z.string().min(1).max(200).describe("the tenant's id") });

/**
 * The alert rules of every bot of a tenant (docs/bots.md "Alert rules for a whole tenant"). The
 * tenant's admin (or a platform admin) sets them; anyone of the tenant reads them, as the bot page
 * shows them inherited. Another tenant's caller finds no such tenant.
 */
export function botTenantAlertRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  const view = async (tenant: string) => {
    const record = await deps.store.tenantBotAlerts.get(tenant);
    const rules = tenantRulesOf(record);
    return {
      tenant,
      alerts: rules.alerts,
      notify: rules.notify,
      updated_at: record?.updated_at ?? null,
      updated_by: record?.updated_by ?? null,
    };
  };

  /** A tenant the caller may set: theirs as its admin, or any as a platform admin. */
  const settable = async (principal: Principal, tenant: string): Promise<void> => {
    await readableTenant(deps, principal, tenant);
    if (principal.role !== "admin") {
      throw new RunyardError("FORBIDDEN", `only an admin of tenant ${tenant} sets its bots' alert rules`, {
        hint: "Ask your tenant's admin; you can still give your own bot alerts at start (--alert, --notify).",
      });
    }
  };

  const common = { tags: ["bots"] };
  const answer = jsonResponse("the tenant's rules", TenantBotAlertsView);

  api.get(
    "/api/bot-alerts/tenants/:tenant",
    {
      schema: {
        ...common,
        operationId: "getTenantBotAlerts",
        summary: "The alert rules every bot of a tenant is watched for",
        description: "Anyone of the tenant reads them; platform admins any tenant's.",
        params: TenantParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      await readableTenant(deps, callerOf(request), request.params.tenant);
      return view(request.params.tenant);
    },
  );

  api.put(
    "/api/bot-alerts/tenants/:tenant",
    {
      schema: {
        ...common,
        operationId: "setTenantBotAlerts",
        summary: "Set the alert rules of every bot of a tenant (its admins, platform admins)",
        description:
          'E.g. `{"alerts":[{"kind":"unhealthy"},{"kind":"memory","above_percent":90,"for_secs":300}],"notify":["https://hooks.example.com/bots"]}`. A bot\'s own alert of a kind overrides the tenant\'s of that kind; a bot\'s own notify URLs replace the tenant\'s. One rule per kind.',
        params: TenantParams,
        body: SetTenantBotAlertsBody,
        response: { 200: answer, ...protectedErrorResponses(400, 404) },
      },
    },
    async (request) => {
      const principal = callerOf(request);
      const tenant = request.params.tenant;
      await settable(principal, tenant);
      const { alerts, notify } = request.body;
      const kinds = alerts.map((alert) => alert.kind);
      const twice = kinds.find((kind, i) => kinds.indexOf(kind) !== i);
      if (twice) {
        throw new RunyardError("INVALID_INPUT", `alerts: two rules of kind ${twice}`, {
          hint: "Give one rule per kind (memory, restart_loop, unhealthy).",
        });
      }
      if (alerts.length > 0 && notify.length === 0) {
        throw new RunyardError("INVALID_INPUT", "alerts need somewhere to say them: notify is empty", {
          hint: 'Add notify URLs, e.g. "notify":["https://hooks.example.com/bots"].',
        });
      }
      for (const url of notify) {
        const refusal = deps.botWatch?.refusalOf(url);
        if (refusal) throw refusal;
      }
      await deps.store.tenantBotAlerts.set(tenant, {
        alerts,
        notify,
        updated_by: principal.username ?? principal.token_id,
      });
      return view(tenant);
    },
  );

  api.delete(
    "/api/bot-alerts/tenants/:tenant",
    {
      preValidation: refuseBodyFields,
      schema: {
        ...common,
        operationId: "clearTenantBotAlerts",
        summary: "Remove a tenant's bot alert rules (its admins, platform admins)",
        description: "Bots keep the alerts they were started with.",
        params: TenantParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      await settable(callerOf(request), request.params.tenant);
      await deps.store.tenantBotAlerts.clear(request.params.tenant);
      return view(request.params.tenant);
    },
  );
}
