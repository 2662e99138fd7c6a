import { createHmac } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { adminToken, api, startTestServer, type TestServer } from "./helpers/server.js";

/*
 * What a removed user made stops: their hooks' deliveries are refused with 410 and the fix, their
 * schedules' ticks are skipped with the reason, and the removal (API and CLI) says which stopped.
 * One server for the file, each test in its own tenant.
 */

let server: TestServer;
const password = "a long enough password";

beforeAll(async () => {
  // Per-second crons keep the schedule's test short.
  server = await startTestServer(tempDir(), {
    RUNYARD_SCHEDULE_MIN_INTERVAL_SECONDS: "1",
    RUNYARD_SCHEDULE_MAX_RUNS_PER_HOUR: "100000",
  });
}, 60_000);

afterAll(async () => {
  await server?.proc.kill("SIGKILL");
});

async function ok<T>(method: string, path: string, body: unknown, token = adminToken): Promise<T> {
  const answer = await api<T>(server.url, method, path, body, token);
  expect(answer.status, `${method} ${path}: ${JSON.stringify(answer.body)}`).toBeLessThan(300);
  return answer.body;
}

/** A member (or tenant admin) of `tenant`, logged in. */
async function member(username: string, tenant: string, role = "member"): Promise<string> {
  await ok("POST", "/api/users", { username, role, tenant_id: tenant, password });
  return (await ok<{ token: string }>("POST", "/api/auth/login", { username, password }, "")).token;
}

const echo = (name: string, extra = "") => `name: ${name}
${extra}steps:
  - name: hello
    action: cmd.run
    args:
      cmd: echo hello
`;

describe("a removed user's triggers", () => {
  it("refuses every delivery to a removed user's hook with 410 and who can make it again", async () => {
    const ada = await member("ada-hooks", "hooks-tenant");
    await ok("POST", "/api/workflows", { name: "on-push", workflow: echo("on-push") }, ada);
    const hook = await ok<{ url: string; secret: string }>(
      "POST",
      "/api/hooks",
      { name: "ada-push", workflow: "on-push" },
      ada,
    );
    const deliver = async (body: string) => {
      const response = await fetch(new URL(hook.url, server.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-hub-signature-256": `sha256=${createHmac("sha256", hook.secret).update(body).digest("hex")}`,
        },
        body,
      });
      return {
        status: response.status,
        body: (await response.json()) as {
          run_id?: string;
          error?: { code: string; message: string; hint: string };
        },
      };
    };
    expect((await deliver('{"n":1}')).status).toBe(202);

    const removed = await ok<{ stopped_triggers: unknown[] }>("DELETE", "/api/users/ada-hooks", undefined);
    expect(removed.stopped_triggers).toEqual([{ kind: "hook", name: "ada-push", workflow: "on-push" }]);

    const refused = await deliver('{"n":2}');
    expect(refused.status).toBe(410);
    expect(refused.body.error?.code).toBe("TRIGGER_OWNER_REMOVED");
    expect(refused.body.error?.message).toBe(
      "hook ada-push was made by a user who has since been removed: its deliveries start no run",
    );
    expect(refused.body.error?.hint).toContain(
      "A tenant admin makes the hook again (`runyard hook rm ada-push`",
    );
    // Nothing was started for it: the tenant has the one run of the first delivery.
    const { runs } = await ok<{ runs: Array<{ saved_workflow: string | null }> }>(
      "GET",
      "/api/runs",
      undefined,
    );
    expect(runs.filter((run) => run.saved_workflow === "on-push")).toHaveLength(1);
  });

  it("refuses every delivery to a removed user's forge with 410, a ping too, and calls no forge", async () => {
    const cy = await member("cy-forges", "forges-tenant", "admin");
    const forge = await ok<{ id: string; webhook_url: string; webhook_secret: string }>(
      "POST",
      "/api/forges",
      { kind: "github", repo: "acme/app", token: "ghp_cy_bot_token", agent: "openai" },
      cy,
    );
    const deliver = async (event: string, body: string) => {
      const response = await fetch(new URL(forge.webhook_url, server.url), {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": event,
          "x-github-delivery": `delivery-${event}-1`,
          "x-hub-signature-256": `sha256=${createHmac("sha256", forge.webhook_secret).update(body).digest("hex")}`,
        },
        body,
      });
      return {
        status: response.status,
        body: (await response.json()) as { error?: { code: string; message: string } },
      };
    };
    expect((await deliver("ping", '{"zen":"hi"}')).status).toBe(202);

    const removed = await ok<{ stopped_triggers: unknown[] }>("DELETE", "/api/users/cy-forges", undefined);
    expect(removed.stopped_triggers).toEqual([{ kind: "forge", name: "github acme/app", workflow: null }]);

    const ping = await deliver("ping", '{"zen":"again"}');
    expect(ping.status).toBe(410);
    expect(ping.body.error?.code).toBe("TRIGGER_OWNER_REMOVED");
    const labeled = await deliver(
      "issues",
      JSON.stringify({
        action: "labeled",
        label: { name: "runyard" },
        issue: { number: 1, title: "Add hello.py", body: "x", user: { login: "alice" }, labels: [] },
        repository: { full_name: "acme/app" },
        sender: { login: "alice" },
      }),
    );
    expect(labeled.status).toBe(410);
    expect(labeled.body.error?.message).toBe(
      "forge github acme/app was added by a user who has since been removed: its deliveries start no run",
    );
    const { runs } = await ok<{ runs: Array<{ tenant_id: string | null }> }>("GET", "/api/runs", undefined);
    expect(runs.filter((run) => run.tenant_id === "forges-tenant")).toEqual([]);
  });

  it("skips a removed user's schedule's ticks, saying why, and `runyard user remove` names it", async () => {
    const bea = await member("bea-schedules", "schedules-tenant");
    await ok(
      "POST",
      "/api/workflows",
      { name: "every-second", workflow: echo("every-second", 'schedule: {cron: "* * * * * *"}\n') },
      bea,
    );

    const removed = await runCli(
      ["user", "remove", "bea-schedules", "--server", server.url, "--token", adminToken],
      {
        cwd: tempDir(),
      },
    );
    expect(removed.code, removed.stderr).toBe(0);
    expect(removed.stderr).toContain(
      "schedule * * * * * * (saved workflow every-second) was theirs and starts no run from now on",
    );
    expect(removed.stderr).toContain("hint: a tenant admin takes these over");

    // The next tick after the removal is skipped with its reason (ticks come every second).
    const removedAt = Date.now();
    const deadline = removedAt + 20_000;
    for (;;) {
      const { schedules } = await ok<{
        schedules: Array<{
          last_tick_at: string | null;
          last_tick: { outcome: string; detail: string | null } | null;
        }>;
      }>("GET", "/api/schedules?tenant=schedules-tenant", undefined);
      const last = schedules[0];
      if (last?.last_tick_at && Date.parse(last.last_tick_at) > removedAt + 1000) {
        expect(last.last_tick?.outcome).toBe("skipped");
        expect(last.last_tick?.detail).toContain("the schedule's owner");
        expect(last.last_tick?.detail).toContain("was removed, so the tick started no run");
        break;
      }
      if (Date.now() > deadline) throw new Error(`no tick after the removal: ${JSON.stringify(schedules)}`);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  });
});
