import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ZodTypeProvider } from "fastify-type-provider-zod";
import { z } from "zod";
import { RunyardError } from "../../core/errors.js";
import { budgetAmountProblem } from "../../core/spend-periods.js";
import type { BudgetRecord, BudgetScope } from "../../store/index.js";
import { apiSchemas, NoQuery, refuseBodyFields } from "../api-schemas.js";
import { callerOf, isPlatformAdmin, type Principal } from "../auth.js";
import type { ServerDeps } from "../deps.js";
import { jsonResponse, protectedErrorResponses } from "../error-responses.js";

const Amount = z
  .number({ error: "must be a number of US dollars, like 20 or 7.5" })
  .min(0, "must be zero or more dollars")
  .max(1_000_000_000, "must be at most 1000000000 dollars")
  .nullable()
  .optional()
  .describe("US dollars, zero or more; null or absent: no limit of that period");

export const SetBudgetBody = z.strictObject({
  usd_per_day: Amount,
  usd_per_month: Amount,
});

const StandingView = z.object({
  period: z.enum(["day", "month"]),
  limit_usd: z.number(),
  spent_usd: z.number().describe("agents' spend in the period so far, counted from their usage events"),
  resets_at: z.string().describe("when the period ends (UTC midnight, or the 1st of the next month)"),
});

const BudgetView = z.object({
  scope: z.enum(["tenant", "user"]),
  subject: z.string().describe("the tenant's id or the user's name"),
  usd_per_day: z.number().nullable(),
  usd_per_month: z.number().nullable(),
  source: z
    .enum(["set", "config", "none"])
    .describe("set through the API, from the server's config file (budgets:), or none"),
  updated_at: z.string().nullable(),
  updated_by: z.string().nullable(),
  standings: z.array(StandingView),
});
apiSchemas.add(BudgetView, { id: "Budget" });

const TenantParams = z.object({ tenant: z.string().min(1).max(200) });
const UserParams = z.object({ username: z.string().min(1).max(200) });

/** A dollar field of the body: a number of zero or more, or null/absent for none. */
function amountOf(field: string, value: unknown): number | null {
  if (value === undefined || value === null) return null;
  const problem = budgetAmountProblem(value);
  if (problem) {
    throw new RunyardError("INVALID_INPUT", `${field}: ${problem}`, {
      hint: `Give ${field} as dollars, zero or more (e.g. 20 or 7.5); null removes that limit.`,
    });
  }
  return value as number;
}

/**
 * Spend budgets per tenant and user (docs/agents.md "Spend budgets"). A platform admin sets a
 * tenant's; an admin sets the budgets of the users they manage (a tenant's admin, their tenant's
 * users). Anyone of a tenant reads its budget; a user reads their own.
 */
export function budgetRoutes(app: FastifyInstance, deps: ServerDeps): void {
  const api = app.withTypeProvider<ZodTypeProvider>();

  const view = async (scope: BudgetScope, subject: string, userId?: string) => {
    const effective = await deps.budgets.effective(scope, subject);
    const standings = await deps.budgets.standingsFor(scope, subject, userId);
    return {
      scope,
      subject,
      usd_per_day: effective.limits.usd_per_day ?? null,
      usd_per_month: effective.limits.usd_per_month ?? null,
      source: effective.source,
      updated_at: effective.updated_at ?? null,
      updated_by: effective.updated_by ?? null,
      standings,
    };
  };

  /** A user the caller may read (themself, or as their admin); others are 404. */
  const readableUser = async (principal: Principal, username: string, toSet: boolean) => {
    const user = await deps.store.users.findByName(username);
    const manages =
      principal.role === "admin" &&
      principal.kind !== "stream" &&
      (principal.tenant_id === null || principal.tenant_id === user?.tenant_id);
    const self = user !== undefined && principal.user_id === user.id;
    if (!user || !(manages || (self && !toSet))) {
      if (user && self && toSet) throw new RunyardError("FORBIDDEN", "only an admin may set a user's budget");
      throw new RunyardError("NOT_FOUND", `user ${username} does not exist`, {
        hint: "`runyard user list` shows the users (admins only).",
      });
    }
    return user;
  };

  const body = (given: z.infer<typeof SetBudgetBody>) => {
    const perDay = amountOf("usd_per_day", given.usd_per_day);
    const perMonth = amountOf("usd_per_month", given.usd_per_month);
    if (perDay === null && perMonth === null) {
      throw new RunyardError("INVALID_INPUT", "give usd_per_day, usd_per_month or both", {
        hint: 'E.g. {"usd_per_day":20,"usd_per_month":300}; to remove a budget, DELETE it.',
      });
    }
    return { usd_per_day: perDay, usd_per_month: perMonth };
  };

  const common = { tags: ["budgets"] };
  const answer = jsonResponse("the budget", BudgetView);

  api.get(
    "/api/budgets/tenants/:tenant",
    {
      schema: {
        ...common,
        operationId: "getTenantBudget",
        summary: "A tenant's spend budget and what its periods have spent",
        description: "Anyone of the tenant reads it; platform admins any tenant's.",
        params: TenantParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      await readableTenant(deps, callerOf(request), request.params.tenant);
      return view("tenant", request.params.tenant);
    },
  );

  api.put(
    "/api/budgets/tenants/:tenant",
    {
      schema: {
        ...common,
        operationId: "setTenantBudget",
        summary: "Set a tenant's spend budget (platform admins only)",
        description:
          'E.g. `{"usd_per_day":20,"usd_per_month":300}`: a turn of the tenant that would start past either is refused with BUDGET_EXCEEDED; a running one stops once it passes what was left.',
        params: TenantParams,
        body: SetBudgetBody,
        response: { 200: answer, ...protectedErrorResponses(400, 404) },
      },
    },
    async (request) => {
      const principal = requirePlatformAdmin(request);
      const tenant = request.params.tenant;
      if (!(await tenantKnown(deps, tenant))) throw noTenant(tenant);
      const limits = body(request.body);
      await deps.store.budgets.set("tenant", tenant, { ...limits, updated_by: actorName(principal) });
      return view("tenant", tenant);
    },
  );

  api.delete(
    "/api/budgets/tenants/:tenant",
    {
      preValidation: refuseBodyFields,
      schema: {
        ...common,
        operationId: "clearTenantBudget",
        summary: "Remove the budget set for a tenant (platform admins only)",
        description: "The config file's budget for the tenant, if any, applies again.",
        params: TenantParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      requirePlatformAdmin(request);
      const tenant = request.params.tenant;
      if (!(await deps.store.budgets.clear("tenant", tenant)) && !(await tenantKnown(deps, tenant))) {
        throw noTenant(tenant);
      }
      return view("tenant", tenant);
    },
  );

  api.get(
    "/api/budgets/users/:username",
    {
      schema: {
        ...common,
        operationId: "getUserBudget",
        summary: "A user's spend budget and what its periods have spent",
        description: "A user reads their own; an admin the users they manage.",
        params: UserParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      const user = await readableUser(callerOf(request), request.params.username, false);
      return view("user", user.username, user.id);
    },
  );

  api.put(
    "/api/budgets/users/:username",
    {
      schema: {
        ...common,
        operationId: "setUserBudget",
        summary: "Set a user's spend budget (admins only)",
        description:
          "E.g. `{\"usd_per_day\":5}`; counts the user's own runs, their personal tokens' included. A budget a platform admin set binds the user's tenant admin: she may lower each period's limit, not raise or remove it (403).",
        params: UserParams,
        body: SetBudgetBody,
        response: { 200: answer, ...protectedErrorResponses(400, 404) },
      },
    },
    async (request) => {
      const principal = callerOf(request);
      const user = await readableUser(principal, request.params.username, true);
      const limits = body(request.body);
      const platform = isPlatformAdmin(principal);
      const stored = await deps.store.budgets.get("user", user.username);
      if (!platform && stored?.platform_bound) refuseLift(user.username, stored, limits);
      await deps.store.budgets.set("user", user.username, {
        ...limits,
        updated_by: actorName(principal),
        platform_bound: platform || stored?.platform_bound === true,
      });
      return view("user", user.username, user.id);
    },
  );

  api.delete(
    "/api/budgets/users/:username",
    {
      preValidation: refuseBodyFields,
      schema: {
        ...common,
        operationId: "clearUserBudget",
        summary: "Remove the budget set for a user (admins only)",
        description:
          "The config file's budget for the user, if any, applies again. A budget a platform admin set is a platform admin's to clear (a tenant's admin: 403).",
        params: UserParams,
        querystring: NoQuery,
        response: { 200: answer, ...protectedErrorResponses(404) },
      },
    },
    async (request) => {
      const principal = callerOf(request);
      const user = await readableUser(principal, request.params.username, true);
      const stored = await deps.store.budgets.get("user", user.username);
      if (!isPlatformAdmin(principal) && stored?.platform_bound) {
        throw new RunyardError(
          "FORBIDDEN",
          `the budget of user ${user.username} was set by a platform admin; a tenant's admin may lower it, not clear it`,
          { hint: platformBoundHint },
        );
      }
      await deps.store.budgets.clear("user", user.username);
      return view("user", user.username, user.id);
    },
  );
}

const platformBoundHint =
  "Give the same or lower dollars per period (runyard user budget set NAME --usd-per-day N), or ask a platform admin (an admin outside every tenant) to lift or clear it.";

/**
 * A tenant admin's change to a budget a platform admin set: each period's limit may stay or go
 * down; raising it, or removing a period's limit, is refused (403) naming the period.
 */
function refuseLift(
  username: string,
  stored: BudgetRecord,
  limits: { usd_per_day: number | null; usd_per_month: number | null },
): void {
  for (const period of ["usd_per_day", "usd_per_month"] as const) {
    const bound = stored[period];
    const asked = limits[period];
    if (bound === null || (asked !== null && asked <= bound)) continue;
    throw new RunyardError(
      "FORBIDDEN",
      `${period} of user ${username} is ${bound} dollars, set by a platform admin; a tenant's admin may lower it, not ${asked === null ? "remove it" : `raise it to ${asked}`}`,
      { hint: platformBoundHint },
    );
  }
}

function requirePlatformAdmin(request: FastifyRequest): Principal {
  const principal = callerOf(request);
  if (!isPlatformAdmin(principal)) {
    throw new RunyardError(
      "FORBIDDEN",
      "only a platform admin (an admin outside every tenant) sets a tenant's budget",
      {
        hint: "A tenant's admin sets the budgets of their tenant's users: runyard user budget set NAME --usd-per-day N.",
      },
    );
  }
  return principal;
}

function actorName(principal: Principal): string | null {
  return principal.username ?? principal.token_id;
}

/** A tenant the caller may read; one they may not, or that no user or token belongs to, is 404. */
export async function readableTenant(deps: ServerDeps, principal: Principal, tenant: string): Promise<void> {
  const readable = isPlatformAdmin(principal)
    ? await tenantKnown(deps, tenant)
    : principal.tenant_id === tenant && principal.kind !== "stream";
  if (!readable) throw noTenant(tenant);
}

/** A tenant exists while a user or a token belongs to it. */
async function tenantKnown(deps: ServerDeps, tenant: string): Promise<boolean> {
  if ((await deps.store.users.list({ tenantId: tenant })).length > 0) return true;
  return (await deps.store.tokens.list({ tenantId: tenant })).length > 0;
}

function noTenant(tenant: string): RunyardError {
  return new RunyardError("NOT_FOUND", `tenant ${tenant} does not exist`, {
    hint: "A tenant exists once a user or token belongs to it (runyard user add NAME --tenant T); check the spelling.",
  });
}
