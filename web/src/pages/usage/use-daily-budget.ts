import { useEffect, useState } from "react";
import { answer, api } from "../../api.js";

/**
 * The daily budget of the tenant a usage report is of (GET /api/budgets/tenants/:tenant), for the
 * chart's budget line; null when the report is of every tenant, or the tenant has no daily limit.
 * A budget the caller may not read is no line, not an error: the page is about spend.
 */
export function useDailyBudget(tenant: string | null | undefined): number | null {
  const [perDay, setPerDay] = useState<{ tenant: string; usd: number | null } | null>(null);
  useEffect(() => {
    if (!tenant) return;
    let stopped = false;
    answer(api.GET("/api/budgets/tenants/{tenant}", { params: { path: { tenant } } })).then(
      (budget) => !stopped && setPerDay({ tenant, usd: budget.usd_per_day }),
      () => !stopped && setPerDay({ tenant, usd: null }),
    );
    return () => {
      stopped = true;
    };
  }, [tenant]);
  return tenant && perDay?.tenant === tenant ? perDay.usd : null;
}
