import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunEvent } from "../../src/core/events.js";
import { runCli } from "../helpers/cli.js";
import { adminToken, api, isFinal, readEvents, waitForRun } from "../helpers/server.js";
import { hasTools, type SharedAgentRunner, startSharedAgentRunner } from "../helpers/shared-agent-runner.js";
import type { Turn } from "../model-server/script.js";

/**
 * Spend budgets above the task, end to end: a real server, a shared sandboxed runner, the
 * built-in `openai` agent against the scripted model server, which reports the usage of each
 * call. gpt-4.1 lists at $2 per million input tokens, so a call of 1,000,000 input tokens costs $2.
 */

const password = "correct horse battery staple";
const million: Turn["usage"] = { input_tokens: 1_000_000, output_tokens: 0 };
let rig: SharedAgentRunner;
let ana: string;

async function member(username: string, tenant: string): Promise<string> {
  const created = await api(rig.server.url, "POST", "/api/users", {
    username,
    role: "member",
    password,
    tenant_id: tenant,
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  const login = await api<{ token: string }>(
    rig.server.url,
    "POST",
    "/api/auth/login",
    { username, password },
    "",
  );
  expect(login.status).toBe(200);
  return login.body.token;
}

/** Submits Ana's task on the shared repo with the model answering `turns`; resolves with its end. */
async function anaTask(turns: Turn[]): Promise<{ runId: string; events: RunEvent[] }> {
  rig.model.setScript({ conversations: [{ match: hasTools, turns }] });
  const submitted = await api<{ run_id: string }>(
    rig.server.url,
    "POST",
    "/api/runs",
    { kind: "agent", agent: "openai", model: "gpt-4.1", prompt: "add notes", repo: { url: rig.remoteUrl } },
    ana,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  await waitForRun(rig.server.url, submitted.body.run_id, isFinal, 120_000);
  return { runId: submitted.body.run_id, events: await readEvents(rig.server.url, submitted.body.run_id) };
}

function finishedOf(events: RunEvent[]) {
  const last = events.at(-1);
  if (last?.type !== "run.finished") throw new Error(`no run.finished: ${last?.type}`);
  return last;
}

interface Report {
  tenant: string | null;
  total: { usd: number; input_tokens: number; calls: number };
  rows: Array<{ key: string; usd: number; input_tokens: number }>;
  days: Array<{ day: string; usd: number; groups: Array<{ key: string; usd: number }> }>;
}

beforeAll(async () => {
  rig = await startSharedAgentRunner({
    name: "budgets",
    runnerId: "budget-runner",
    readme: "notes\n",
    apiKey: "sk-test-budget-5b1e",
  });
  ana = await member("ana", "acme");
}, 120_000);

afterAll(async () => {
  await rig?.stop();
});

describe("a tenant's daily budget", () => {
  it("refuses bad amounts, an unknown tenant and a member who sets one, each with a hint", async () => {
    const url = rig.server.url;
    const negative = await api<{ error: { code: string; message: string; hint: string } }>(
      url,
      "PUT",
      "/api/budgets/tenants/acme",
      { usd_per_day: -1 },
    );
    expect(negative.status).toBe(400);
    expect(negative.body.error.message).toMatch(/usd_per_day.*zero or more/);
    const text = await api<{ error: { message: string } }>(url, "PUT", "/api/budgets/tenants/acme", {
      usd_per_day: "twenty",
    });
    expect(text.status).toBe(400);
    expect(text.body.error.message).toMatch(/usd_per_day.*number of US dollars/);
    const empty = await api<{ error: { hint: string } }>(url, "PUT", "/api/budgets/tenants/acme", {});
    expect(empty.status).toBe(400);
    expect(empty.body.error.hint).toMatch(/usd_per_day/);
    const unknown = await api<{ error: { code: string; hint: string } }>(
      url,
      "PUT",
      "/api/budgets/tenants/nobody",
      {
        usd_per_day: 3,
      },
    );
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.hint).toMatch(/runyard user add/);
    const byMember = await api(url, "PUT", "/api/budgets/tenants/acme", { usd_per_day: 1000 }, ana);
    expect(byMember.status).toBe(403);
    const own = await api(url, "PUT", "/api/budgets/users/ana", { usd_per_day: 1000 }, ana);
    expect(own.status).toBe(403);

    const cli = await runCli([
      "tenant",
      "budget",
      "set",
      "acme",
      "--usd-per-day",
      "-5",
      "--server",
      url,
      "--token",
      adminToken,
    ]);
    expect(cli.code).not.toBe(0);
    expect(cli.stderr).toMatch(/--usd-per-day "-5": -5 is below zero/);
    const since = await runCli(["usage", "--since", "7x", "--server", url, "--token", adminToken]);
    expect(since.code).not.toBe(0);
    expect(since.stderr).toMatch(/since "7x" is not a span or a date/);
  });

  it("is set by a platform admin through the CLI and read by a member of the tenant", async () => {
    const url = rig.server.url;
    const set = await runCli([
      "tenant",
      "budget",
      "set",
      "acme",
      "--usd-per-day",
      "3",
      "--usd-per-month",
      "300",
      "--server",
      url,
      "--token",
      adminToken,
    ]);
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toMatch(/tenant acme: set by/);
    const read = await api<{ usd_per_day: number; standings: Array<{ period: string; spent_usd: number }> }>(
      url,
      "GET",
      "/api/budgets/tenants/acme",
      undefined,
      ana,
    );
    expect(read.status).toBe(200);
    expect(read.body.usd_per_day).toBe(3);
    expect(read.body.standings.map((s) => [s.period, s.spent_usd])).toEqual([
      ["day", 0],
      ["month", 0],
    ]);
  });

  it("lets a turn within it run, and counts what it spent", async () => {
    const { events } = await anaTask([
      {
        toolCalls: [{ name: "write_file", input: { path: "one.txt", content: "one\n" } }],
        usage: million,
      },
      { text: "Done.", usage: { input_tokens: 0, output_tokens: 0 } },
    ]);
    const finished = finishedOf(events);
    expect(finished.status, JSON.stringify(finished.error)).toBe("success");
    const read = await api<{ standings: Array<{ period: string; spent_usd: number }> }>(
      rig.server.url,
      "GET",
      "/api/budgets/tenants/acme",
      undefined,
      ana,
    );
    expect(read.body.standings.find((s) => s.period === "day")?.spent_usd).toBeCloseTo(2, 6);
  }, 150_000);

  it("stops a running turn at the usage event that crosses it, its work so far committed", async () => {
    const { events } = await anaTask([
      {
        toolCalls: [{ name: "write_file", input: { path: "two.txt", content: "two\n" } }],
        usage: { input_tokens: 10, output_tokens: 0 },
      },
      {
        toolCalls: [{ name: "write_file", input: { path: "three.txt", content: "three\n" } }],
        usage: million,
      },
      { text: "Done.", usage: { input_tokens: 0, output_tokens: 0 } },
    ]);
    const finished = finishedOf(events);
    expect(finished.status).toBe("failed");
    expect(finished.error?.code).toBe("BUDGET_EXCEEDED");
    expect(finished.error?.message).toMatch(/took tenant acme's daily budget of \$3 past its limit/);
    const summary = finished.agents?.[0];
    expect(summary?.commit).toMatch(/^[0-9a-f]{40}$/);
    expect(summary?.input_tokens).toBe(1_000_010);
  }, 150_000);

  it("refuses the next turn at submit with BUDGET_EXCEEDED, naming the budget and when it resets", async () => {
    const refused = await api<{ error: { code: string; message: string; hint: string } }>(
      rig.server.url,
      "POST",
      "/api/runs",
      { kind: "agent", agent: "openai", model: "gpt-4.1", prompt: "more", repo: { url: rig.remoteUrl } },
      ana,
    );
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("BUDGET_EXCEEDED");
    const midnight = new Date();
    midnight.setUTCHours(24, 0, 0, 0);
    expect(refused.body.error.message).toContain("tenant acme's daily budget of $3 is spent");
    expect(refused.body.error.message).toContain(`starts again at ${midnight.toISOString()}`);
    expect(refused.body.error.hint).toMatch(/runyard tenant budget set acme --usd-per-day/);
  });

  it("reports the spend grouped by user, agent and model, through the API and the CLI", async () => {
    const url = rig.server.url;
    for (const [by, key] of [
      ["user", "ana"],
      ["agent", "openai"],
      ["model", "gpt-4.1"],
    ] as const) {
      const report = await api<Report>(url, "GET", `/api/usage?by=${by}&since=7d`, undefined, ana);
      expect(report.status).toBe(200);
      expect(report.body.tenant).toBe("acme");
      expect(report.body.rows.map((row) => row.key)).toEqual([key]);
      expect(report.body.total.usd).toBeCloseTo(4, 4);
      expect(report.body.total.input_tokens).toBe(2_000_010);
      const today = new Date().toISOString().slice(0, 10);
      expect(report.body.days.find((d) => d.day === today)?.usd).toBeCloseTo(4, 4);
      // The day split by the same grouping, for the page's stacked bars.
      const groups = report.body.days.find((d) => d.day === today)?.groups ?? [];
      expect(groups.map((group) => group.key)).toEqual([key]);
      expect(groups[0]?.usd).toBeCloseTo(4, 4);
    }
    const cli = await runCli(["usage", "--by", "model", "--server", url, "--token", ana]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(/gpt-4\.1\s+\$4\.00\s+2000010/);
    const bad = await api<{ error: { code: string } }>(
      url,
      "GET",
      "/api/usage?since=tomorrowish",
      undefined,
      ana,
    );
    expect(bad.status).toBe(400);
  });

  it("shows a member of another tenant none of it", async () => {
    const url = rig.server.url;
    const report = await api<Report>(url, "GET", "/api/usage?by=user", undefined, rig.victim);
    expect(report.status).toBe(200);
    expect(report.body.tenant).toBe("globex");
    expect(report.body.rows).toEqual([]);
    expect(report.body.total.usd).toBe(0);
    const asked = await api(url, "GET", "/api/usage?tenant=acme", undefined, rig.victim);
    expect(asked.status).toBe(403);
    const byTenant = await api(url, "GET", "/api/usage?by=tenant", undefined, rig.victim);
    expect(byTenant.status).toBe(403);
    const budget = await api(url, "GET", "/api/budgets/tenants/acme", undefined, rig.victim);
    expect(budget.status).toBe(404);
    const userBudget = await api(url, "GET", "/api/budgets/users/ana", undefined, rig.victim);
    expect(userBudget.status).toBe(404);
    const metrics = await fetch(new URL("/metrics", url), {
      headers: { authorization: `Bearer ${rig.victim}` },
    });
    expect(metrics.status).toBe(403);
  });

  it("counts tokens and dollars by tenant, agent and model in /metrics", async () => {
    const response = await fetch(new URL("/metrics", rig.server.url), {
      headers: { authorization: `Bearer ${adminToken}` },
    });
    const text = await response.text();
    // Every series also carries the replica's label.
    expect(text).toMatch(
      /runyard_agent_tokens_total\{tenant="acme",agent="openai",model="gpt-4\.1",direction="input",replica="[^"]+"\} 2000010\n/,
    );
    const cost =
      /runyard_agent_cost_usd_total\{tenant="acme",agent="openai",model="gpt-4\.1",replica="[^"]+"\} ([\d.]+)/.exec(
        text,
      );
    expect(Number(cost?.[1])).toBeCloseTo(4, 4);
  });

  it("starts turns again once an admin clears the budget", async () => {
    const cleared = await runCli([
      "tenant",
      "budget",
      "clear",
      "acme",
      "--server",
      rig.server.url,
      "--token",
      adminToken,
    ]);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(cleared.stdout).toMatch(/no spend limit/);
    const submitted = await api(
      rig.server.url,
      "POST",
      "/api/runs",
      { kind: "agent", agent: "openai", model: "gpt-4.1", prompt: "x", repo: { url: rig.remoteUrl } },
      ana,
    );
    expect(submitted.status).toBe(201);
  });
});
