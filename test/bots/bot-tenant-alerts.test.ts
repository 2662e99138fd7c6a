import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.js";
import { busyboxImage, removeBotObjects, requireDocker } from "../helpers/docker.js";
import { api, type Proc, startRunner, startTestServer, type TestServer } from "../helpers/server.js";

/**
 * A tenant's alert rules for all its bots and the webhook rate limit, through the built server
 * and CLI: a tenant's admin sets the rules, its members read them on their bots (inherited or
 * overridden), a teammate may not set them and another tenant finds none; a burst of webhooks
 * past the limit gets 429 with Retry-After, and a flood with a wrong secret uses none of it.
 * The bots are a busybox image on acme's runner; whether they run does not matter here.
 */

const haveDocker = await requireDocker();
const run = `bot-tenant-alerts-${process.pid}-${Date.now().toString(36)}`;
let runner: Proc | undefined;
const botIds: string[] = [];

let server: TestServer;
let acmeAdmin: string;
let alice: string;
let bob: string;
let mallory: string;

async function token(body: Record<string, string>): Promise<string> {
  const answer = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(answer.status, JSON.stringify(answer.body)).toBe(201);
  return answer.body.token;
}

const cli = (args: string[], tokenOf: string) =>
  runCli(args, { env: { RUNYARD_SERVER_URL: server.url, RUNYARD_TOKEN: tokenOf } });

interface AlertsView {
  alerts: { kind: string }[];
  inherited: { kind: string }[];
  overridden: { kind: string }[];
  notify: string[];
  notify_inherited: boolean;
}

describe.skipIf(!haveDocker)("bot alert rules per tenant and the webhook rate limit on a real server", () => {
  beforeAll(async () => {
    server = await startTestServer();
    const runnerToken = await token({ kind: "runner", name: "acme runner", tenant_id: "acme" });
    runner = await startRunner(server.url, runnerToken, {
      id: run,
      env: { RUNYARD_LOG_LEVEL: "error" },
    });
    const image = await busyboxImage();
    acmeAdmin = await token({ kind: "admin", name: "acme admin", tenant_id: "acme" });
    alice = await token({ kind: "user", name: "alice", tenant_id: "acme" });
    bob = await token({ kind: "user", name: "bob", tenant_id: "acme" });
    mallory = await token({ kind: "user", name: "mallory", tenant_id: "globex" });
    for (const [name, who, extra] of [
      ["plain", alice, {}],
      ["own", alice, { alerts: [{ kind: "unhealthy" }], notify: ["https://hooks.example.com/alice"] }],
      ["hooked", alice, { webhook_port: 8080 }],
    ] as const) {
      const started = await api<{ bot: { id: string } }>(
        server.url,
        "POST",
        "/api/bots",
        { name, image, ...extra },
        who,
      );
      expect(started.status, JSON.stringify(started.body)).toBe(202);
      botIds.push(started.body.bot.id);
    }
  }, 120_000);

  afterAll(async () => {
    await runner?.kill("SIGKILL");
    await server?.proc.kill("SIGKILL");
    await removeBotObjects(botIds);
  }, 60_000);

  it("lets the tenant's admin set rules with the CLI that every bot of the tenant inherits unless it has its own of a kind", async () => {
    const set = await cli(
      [
        "tenant",
        "bot-alerts",
        "set",
        "acme",
        "--alert",
        "unhealthy",
        "--alert",
        "memory>90%/5m",
        "--notify",
        "https://hooks.example.com/acme",
      ],
      acmeAdmin,
    );
    expect(set.code, set.stderr).toBe(0);
    expect(set.stdout).toContain("notify: https://hooks.example.com/acme");
    const plain = await api<AlertsView>(server.url, "GET", "/api/bots/plain/alerts", undefined, alice);
    expect(plain.status).toBe(200);
    expect(plain.body.alerts).toEqual([]);
    expect(plain.body.inherited.map((alert) => alert.kind)).toEqual(["unhealthy", "memory"]);
    expect(plain.body.notify).toEqual(["https://hooks.example.com/acme"]);
    expect(plain.body.notify_inherited).toBe(true);
    const own = await api<AlertsView>(server.url, "GET", "/api/bots/own/alerts", undefined, alice);
    expect(own.body.alerts.map((alert) => alert.kind)).toEqual(["unhealthy"]);
    expect(own.body.inherited.map((alert) => alert.kind)).toEqual(["memory"]);
    expect(own.body.overridden.map((alert) => alert.kind)).toEqual(["unhealthy"]);
    expect(own.body.notify).toEqual(["https://hooks.example.com/alice"]);
    expect(own.body.notify_inherited).toBe(false);
    const shown = await cli(["bot", "alerts", "plain"], alice);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).toContain('inherited from its tenant: {"kind":"unhealthy"}');
    expect(shown.stdout).toContain("notify (its tenant's): https://hooks.example.com/acme");
    // A member of the tenant reads them.
    const read = await cli(["tenant", "bot-alerts", "show", "acme", "--json"], bob);
    expect(read.code, read.stderr).toBe(0);
    expect(JSON.parse(read.stdout)).toMatchObject({
      tenant: "acme",
      updated_by: expect.stringMatching(/^tok_/),
    });
  });

  it("refuses a teammate setting or clearing them, and another tenant reading, setting or clearing them", async () => {
    const body = { alerts: [], notify: [] };
    const teammate = await api<{ error: { code: string } }>(
      server.url,
      "PUT",
      "/api/bot-alerts/tenants/acme",
      body,
      bob,
    );
    expect(teammate.status).toBe(403);
    expect(teammate.body.error.code).toBe("FORBIDDEN");
    expect((await api(server.url, "DELETE", "/api/bot-alerts/tenants/acme", undefined, bob)).status).toBe(
      403,
    );
    const viaCli = await cli(["tenant", "bot-alerts", "clear", "acme"], bob);
    expect(viaCli.code).not.toBe(0);
    expect(viaCli.stderr).toContain("only an admin of tenant acme");
    for (const [method, payload] of [
      ["GET", undefined],
      ["PUT", body],
      ["DELETE", undefined],
    ] as const) {
      const other = await api<{ error: { code: string } }>(
        server.url,
        method,
        "/api/bot-alerts/tenants/acme",
        payload,
        mallory,
      );
      expect(other.status, method).toBe(404);
      expect(JSON.stringify(other.body)).not.toContain("hooks.example.com");
    }
    // Nor does another tenant's member see a bot of acme's, its inherited rules with it.
    expect((await api(server.url, "GET", "/api/bots/plain/alerts", undefined, mallory)).status).toBe(404);
    // Nothing changed.
    const kept = await api<{ alerts: unknown[] }>(
      server.url,
      "GET",
      "/api/bot-alerts/tenants/acme",
      undefined,
      alice,
    );
    expect(kept.body.alerts).toHaveLength(2);
  });

  it("refuses bad rules with what to write instead, storing nothing", async () => {
    const bad = async (body: unknown) =>
      api<{ error: { code: string; message: string; hint?: string } }>(
        server.url,
        "PUT",
        "/api/bot-alerts/tenants/acme",
        body,
        acmeAdmin,
      );
    const twice = await bad({
      alerts: [{ kind: "unhealthy" }, { kind: "unhealthy" }],
      notify: ["https://hooks.example.com/x"],
    });
    expect(twice.status).toBe(400);
    expect(twice.body.error.message).toContain("two rules of kind unhealthy");
    const nowhere = await bad({ alerts: [{ kind: "unhealthy" }], notify: [] });
    expect(nowhere.status).toBe(400);
    expect(nowhere.body.error.hint).toContain("notify");
    const inside = await bad({ alerts: [{ kind: "unhealthy" }], notify: ["http://127.0.0.1:9/x"] });
    expect(inside.status).toBe(400);
    const negative = await bad({
      alerts: [{ kind: "memory", above_percent: -5 }],
      notify: ["https://a.example/x"],
    });
    expect(negative.status).toBe(400);
    const flag = await cli(["tenant", "bot-alerts", "set", "acme", "--alert", "memory>0%"], acmeAdmin);
    expect(flag.code).not.toBe(0);
    const kept = await api<{ alerts: { kind: string }[]; notify: string[] }>(
      server.url,
      "GET",
      "/api/bot-alerts/tenants/acme",
      undefined,
      acmeAdmin,
    );
    expect(kept.body.alerts.map((alert) => alert.kind)).toEqual(["unhealthy", "memory"]);
    expect(kept.body.notify).toEqual(["https://hooks.example.com/acme"]);
    // Cleared: bots keep their own alerts only.
    const cleared = await cli(["tenant", "bot-alerts", "clear", "acme"], acmeAdmin);
    expect(cleared.code, cleared.stderr).toBe(0);
    const own = await api<AlertsView>(server.url, "GET", "/api/bots/own/alerts", undefined, alice);
    expect(own.body.inherited).toEqual([]);
    expect(own.body.alerts.map((alert) => alert.kind)).toEqual(["unhealthy"]);
  });

  it("answers a burst of webhooks past the limit 429 with Retry-After; a flood with a wrong secret uses none of it", async () => {
    const hook = await api<{ path: string; secret: string }>(
      server.url,
      "GET",
      "/api/bots/hooked/webhook",
      undefined,
      alice,
    );
    expect(hook.status).toBe(200);
    const post = (path: string) =>
      fetch(new URL(path, server.url), {
        method: "POST",
        body: "{}",
        headers: { "content-type": "application/json" },
      });
    const wrong = hook.body.path.replace(hook.body.secret, "not-the-secret");
    const wrongAnswers = await Promise.all(Array.from({ length: 30 }, () => post(wrong)));
    expect(wrongAnswers.map((answer) => answer.status)).toEqual(Array(30).fill(404));
    // A request let through goes on to the bot (which listens on no port: 502, or 503 while it
    // starts); one past the limit is 429 and goes nowhere.
    const statuses: number[] = [];
    let limited: Response | undefined;
    for (let i = 0; i < 80 && !limited; i++) {
      const answer = await post(hook.body.path);
      statuses.push(answer.status);
      if (answer.status === 429) limited = answer;
      else await answer.text();
    }
    expect(statuses[0]).not.toBe(429);
    expect(limited, `statuses: ${statuses.join(",")}`).toBeDefined();
    expect(statuses.filter((status) => status !== 429).length).toBeGreaterThanOrEqual(20);
    const retryAfter = Number(limited?.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(2);
    const body = (await limited?.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe("RATE_LIMITED");
    expect(body.error.message).toContain("counted across every server replica");
  });
});
