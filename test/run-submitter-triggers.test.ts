import { createHmac } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import type { QuotaSettings } from "../src/server/quotas.js";
import type { RunningServer } from "../src/server/server.js";
import { type ScriptedForge, startScriptedForge } from "./forge-server/server.js";
import { tempDir } from "./helpers/cli.js";
import { addGithubForge, startedRun } from "./helpers/forge-setup.js";
import {
  adminToken,
  injectJson,
  signedInMember,
  startInProcessServer,
  tenantRunnerKnown,
} from "./helpers/in-process.js";

/*
 * A run a trigger starts (a hook's delivery, a schedule's tick) is its maker's: it counts against
 * their run quota, spends their budget and names them. These tests make the trigger with a
 * personal token, revoke that token, and then fire it: the run must stay the user's (revoking a
 * token must not free its user of their own limits). A real server in this process, real SQLite.
 */

let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(
  quotas: QuotaSettings,
  extra: { scheduleMinIntervalSeconds?: number; scheduleMaxRunsPerHour?: number } = {},
) {
  server = await startInProcessServer({ quotas, ...extra });
  return server;
}

async function call(method: string, url: string, token: string | undefined, body?: unknown) {
  if (!server) throw new Error("no server");
  return injectJson(server.app, method, url, { token, ...(body !== undefined ? { body } : {}) });
}

async function addUser(username: string, tenant: string): Promise<string> {
  if (!server) throw new Error("no server");
  return signedInMember(server, username, tenant);
}

/** A personal token of the signed-in user: its id and secret. */
async function personalToken(session: string, name: string): Promise<{ id: string; token: string }> {
  const made = await call("POST", "/api/tokens", session, { kind: "user", name });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  return { id: made.body.id, token: made.body.token };
}

const hello = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

async function expectQuotaRefused(token: string, message: RegExp): Promise<void> {
  const answer = await call("POST", "/api/runs", token, { workflow: hello });
  expect(answer.status, JSON.stringify(answer.body)).toBe(429);
  expect(answer.body.error).toMatchObject({
    code: "QUOTA_EXCEEDED",
    message: expect.stringMatching(message),
  });
}

const hookSecret = "a-long-hook-secret-0123456789abcdef";

/** A saved workflow and a hook on it, made with `token`: the hook's id. */
async function hookOf(token: string): Promise<string> {
  const saved = await call("POST", "/api/workflows", token, { name: "deploy", workflow: hello });
  expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  const hook = await call("POST", "/api/hooks", token, {
    name: "on-push",
    workflow: "deploy",
    secret: hookSecret,
  });
  expect(hook.status, JSON.stringify(hook.body)).toBe(201);
  return hook.body.id;
}

/** A signed delivery of a body of its own (`n`) to the hook. */
async function deliver(
  hookId: string,
  n: number,
): Promise<{ status: number; body: { run_id?: string; error?: { code: string; message: string } } }> {
  const body = JSON.stringify({ ref: "refs/heads/main", at: n });
  const answer = await server?.app.inject({
    method: "POST",
    url: `/api/hooks/${hookId}`,
    headers: {
      "content-type": "application/json",
      "x-hub-signature-256": `sha256=${createHmac("sha256", hookSecret).update(body).digest("hex")}`,
    },
    payload: body,
  });
  return { status: answer?.statusCode ?? 0, body: JSON.parse(answer?.body ?? "{}") };
}

describe("a trigger made through a token revoked since", () => {
  it("a hook's delivery is still its maker's run: it counts against their quota and names them", async () => {
    await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    const ann = await addUser("ann", "acme");
    const laptop = await personalToken(ann, "laptop");
    const hookId = await hookOf(laptop.token);
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, ann)).status).toBe(200);

    const delivered = await deliver(hookId, 1);
    expect(delivered.status, JSON.stringify(delivered.body)).toBe(202);
    const page = await call("GET", `/api/runs/${delivered.body.run_id}`, ann);
    expect(page.status).toBe(200);
    expect(page.body.created_by_name).toBe("ann");
    // The hook's queued run is ann's: her one queued run is taken.
    await expectQuotaRefused(ann, /^user ann has 1 of 1 queued runs$/);
  });

  it("a schedule's tick is still its promoter's run: it counts against their quota and names them", async () => {
    await start(
      { quotas: { users: { ann: { max_queued_runs: 1 } } } },
      {
        scheduleMinIntervalSeconds: 1,
        scheduleMaxRunsPerHour: 100_000,
      },
    );
    const ann = await addUser("ann", "acme");
    const laptop = await personalToken(ann, "laptop");
    const workflow = `name: nightly
schedule: {cron: "* * * * * *", overlap: queue}
steps:
  - name: tick
    action: cmd.run
    args:
      cmd: echo tick
`;
    // Saved before the revocation, so the schedule fires for the first time after it.
    const saved = await call("POST", "/api/workflows", laptop.token, { name: "nightly", workflow });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, ann)).status).toBe(200);
    const revokedAt = Date.now();
    // A tick that came between the save and the revocation (a busy machine) took ann's one
    // queued place and held every later tick back: it is canceled, so a tick after can fire.
    const before = (await server?.store.runs.list({ tenantId: "acme", limit: 50 }))?.runs ?? [];
    for (const early of before.filter(
      (run) => run.trigger === "schedule" && Date.parse(run.created_at) < revokedAt,
    ))
      expect((await call("POST", `/api/runs/${early.id}/cancel`, adminToken)).status).toBeLessThan(300);

    let tick: { id: string; created_at: string } | undefined;
    const deadline = Date.now() + 30_000;
    while (!tick && Date.now() < deadline) {
      const { runs } = (await server?.store.runs.list({ tenantId: "acme", limit: 50 })) ?? { runs: [] };
      tick = runs.find((run) => run.trigger === "schedule" && Date.parse(run.created_at) >= revokedAt);
      if (!tick) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(tick, "the schedule fired no run within 30 s").toBeDefined();
    const page = await call("GET", `/api/runs/${tick?.id}`, ann);
    expect(page.body.created_by_name).toBe("ann");
    // The tick's queued run is hers: it takes her one place (the ticks after it are held to it).
    await expectQuotaRefused(ann, /^user ann has 1 of 1 queued runs$/);
  });
});

describe("a hook is held to its maker's own run quota", () => {
  it("refuses a delivery (429) while the hook's maker is at their limit, a token revoked since too, storing no run", async () => {
    await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    const ann = await addUser("ann", "acme");
    const bob = await addUser("bob", "acme");
    const laptop = await personalToken(ann, "laptop");
    const hookId = await hookOf(laptop.token);
    const first = await deliver(hookId, 1);
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    const expectRefused = async (n: number) => {
      const before = (await server?.store.runs.list({ limit: 500 }))?.runs.length;
      const refused = await deliver(hookId, n);
      expect(refused.status, JSON.stringify(refused.body)).toBe(429);
      expect(refused.body.error).toMatchObject({
        code: "QUOTA_EXCEEDED",
        message: "user ann has 1 of 1 queued runs",
      });
      expect((await server?.store.runs.list({ limit: 500 }))?.runs.length).toBe(before);
    };
    await expectRefused(2);
    // Revoking the token the hook was made with does not lift ann's limit from it.
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, ann)).status).toBe(200);
    await expectRefused(3);
    // bob, who has no limit of his own, is not held back by ann's.
    const bobs = await call("POST", "/api/runs", bob, { workflow: hello });
    expect(bobs.status, JSON.stringify(bobs.body)).toBe(201);
    // Once ann's queued run is gone, her hook delivers again.
    expect((await call("POST", `/api/runs/${first.body.run_id}/cancel`, ann)).status).toBe(200);
    const again = await deliver(hookId, 4);
    expect(again.status, JSON.stringify(again.body)).toBe(202);
  });
});

describe("credentials that carry a user but are not one's API access", () => {
  it("a stream token of the submitter opens neither the run's text, its edited retry nor a follow-up", async () => {
    await start({});
    const ann = await addUser("ann", "acme");
    const submitted = await call("POST", "/api/runs", ann, { workflow: hello });
    expect(submitted.status).toBe(201);
    const runId = submitted.body.run_id as string;
    const stream = await call("POST", `/api/runs/${runId}/stream-token`, ann);
    expect(stream.status, JSON.stringify(stream.body)).toBeLessThan(300);
    const streamToken = stream.body.token as string;
    for (const [method, url, body] of [
      ["GET", `/api/runs/${runId}/workflow`, undefined],
      ["POST", `/api/runs/${runId}/retry`, { workflow: hello }],
      ["POST", `/api/runs/${runId}/messages`, { text: "go on" }],
      ["POST", `/api/runs/${runId}/rerun`, {}],
    ] as const) {
      const answer = await call(method, url, streamToken, body);
      expect(answer.status, `${method} ${url}: ${JSON.stringify(answer.body)}`).toBe(401);
    }
  });
});

describe("a user made again under a removed user's name", () => {
  it("inherits none of the removed user's runs: not their quota, name, text, edited retry, nor their hook's runs", async () => {
    await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    const oldAnn = await addUser("ann", "acme");
    const laptop = await personalToken(oldAnn, "laptop");
    const hookId = await hookOf(laptop.token);
    const submitted = await call("POST", "/api/runs", oldAnn, { workflow: hello });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const oldRun = submitted.body.run_id as string;
    expect((await call("DELETE", "/api/users/ann", adminToken)).status).toBe(200);

    const newAnn = await addUser("ann", "acme");
    const page = await call("GET", `/api/runs/${oldRun}`, newAnn);
    expect(page.status).toBe(200);
    expect(page.body.created_by_name).toBeNull();
    expect((await call("GET", `/api/runs/${oldRun}/workflow`, newAnn)).status).toBe(403);
    await server?.store.runs.update(oldRun, { status: "failed" });
    const edited = await call("POST", `/api/runs/${oldRun}/retry`, newAnn, { workflow: hello });
    expect(edited.status, JSON.stringify(edited.body)).toBe(403);
    // The removed ann's hook starts nothing any more: no run of nobody's, nor one of the new ann's.
    const delivered = await deliver(hookId, 1);
    expect(delivered.status, JSON.stringify(delivered.body)).toBe(410);
    expect(delivered.body.error?.code).toBe("TRIGGER_OWNER_REMOVED");
    // Neither run is the new ann's: her one queued run is free.
    const mine = await call("POST", "/api/runs", newAnn, { workflow: hello });
    expect(mine.status, JSON.stringify(mine.body)).toBe(201);
    await expectQuotaRefused(newAnn, /^user ann has 1 of 1 queued runs$/);
  });
});

describe("self_approval: false on a hook's run", () => {
  it("refuses the hook's maker after they revoke its token and the audit log no longer holds it; a teammate answers", async () => {
    const s = await start({});
    await tenantRunnerKnown(s, "acme");
    const ann = await addUser("ann", "acme");
    const bob = await addUser("bob", "acme");
    const laptop = await personalToken(ann, "laptop");
    const gated = `name: gated
steps:
  - name: gate
    action: approval
    args: {message: ship?, approvers: [ann, bob], self_approval: false}
`;
    const saved = await call("POST", "/api/workflows", laptop.token, { name: "deploy", workflow: gated });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const hook = await call("POST", "/api/hooks", laptop.token, {
      name: "on-push",
      workflow: "deploy",
      secret: hookSecret,
    });
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, ann)).status).toBe(200);
    // Past the audit log's retention: its token.revoke entry is gone.
    await s.store.audit.prune(new Date(Date.now() + 60_000).toISOString());

    const delivered = await deliver(hook.body.id, 1);
    expect(delivered.status, JSON.stringify(delivered.body)).toBe(202);
    const runId = delivered.body.run_id as string;
    const deadline = Date.now() + 20_000;
    while (!(await s.store.approvals.get(runId, "gate"))) {
      if (Date.now() > deadline) throw new Error(`run ${runId} never started waiting`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const mine = await call("POST", `/api/runs/${runId}/steps/gate/approve`, ann, {});
    expect(mine.status, JSON.stringify(mine.body)).toBe(403);
    expect(mine.body.error.message).toContain("takes no answer from its submitter");
    const bobs = await call("POST", `/api/runs/${runId}/steps/gate/approve`, bob, {});
    expect(bobs.status, JSON.stringify(bobs.body)).toBe(200);
  });
});

describe("acting for a trigger made through a token revoked since", () => {
  it("lets its maker's save go live at once, and still holds a teammate's save pending", async () => {
    await start({});
    const ann = await addUser("ann", "acme");
    const bob = await addUser("bob", "acme");
    const laptop = await personalToken(ann, "laptop");
    await hookOf(laptop.token);
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, ann)).status).toBe(200);
    const save = (token: string, script: string) =>
      call("POST", "/api/workflows", token, {
        name: "deploy",
        workflow: hello.replace("echo hi", script),
      });
    const bobs = await save(bob, "echo bob");
    expect(bobs.status, JSON.stringify(bobs.body)).toBe(201);
    expect(bobs.body.promoted).toBe(false);
    const anns = await save(ann, "echo ann");
    expect(anns.status, JSON.stringify(anns.body)).toBe(201);
    expect(anns.body.promoted).toBe(true);
  });
});

describe("a forge added through a token revoked since", () => {
  let forge: ScriptedForge | undefined;
  afterEach(async () => {
    await forge?.close();
    forge = undefined;
  });

  /**
   * A platform admin user root (only they may add a forge on a server of their own, as this one
   * is) adds a forge with a personal token, then revokes it; `deliver` opens and delivers an issue.
   */
  async function forgeOfRevokedToken(quotas: QuotaSettings) {
    const s = await start(quotas);
    forge = await startScriptedForge(tempDir("runyard-forge-revoked-"));
    forge.createRepo("acme/app", { "README.md": "app\n" });
    forge.addToken("ghp_bot_token_revoked_adder", "runyard-bot");
    forge.setPermission("alice", "write");
    const password = "root-password-1234";
    const made = await call("POST", "/api/users", adminToken, { username: "root", role: "admin", password });
    expect(made.status, JSON.stringify(made.body)).toBe(201);
    const root = (await call("POST", "/api/auth/login", undefined, { username: "root", password })).body
      .token as string;
    const laptop = await personalToken(root, "laptop");
    const added = await addGithubForge({
      serverUrl: s.url,
      forgeUrl: forge.url,
      repo: "acme/app",
      botToken: "ghp_bot_token_revoked_adder",
      agent: "openai",
      test: "true",
      token: laptop.token,
    });
    expect((await call("DELETE", `/api/tokens/${laptop.id}`, root)).status).toBe(200);
    // A runner that could take the task, known to the store but not connected: the task waits.
    await s.store.runners.upsert({
      id: "agent-runner",
      group: "default",
      labels: ["agent:openai", "mode:issue"],
      mode: "all",
      capacity: 1,
      hostname: "host",
      tenant_id: null,
    });
    const deliver = (title: string) => {
      const opened = forge?.createIssue("acme/app", { title, body: "x", user: "alice" });
      if (!forge || !opened) throw new Error("no forge");
      return forge.deliver(
        added.webhookUrl,
        added.webhookSecret,
        "issues",
        forge.payloads.labeled("acme/app", opened, "runyard", "alice"),
      );
    };
    return { root, deliver };
  }

  it("starts its adder's runs: named theirs, counted against their quota at delivery and after", async () => {
    const { root, deliver } = await forgeOfRevokedToken({
      quotas: { users: { root: { max_queued_runs: 1 } } },
    });
    const runId = startedRun(await deliver("First"));
    const page = await call("GET", `/api/runs/${runId}`, root);
    expect(page.body.created_by_name).toBe("root");
    // root's one queued run is the forge's: the next issue is refused, and so is root's own submit.
    const refused = await deliver("Second");
    expect(refused.status, refused.body).toBe(429);
    expect(JSON.parse(refused.body).error).toMatchObject({
      code: "QUOTA_EXCEEDED",
      message: expect.stringMatching(/started nothing: user root has 1 of 1 queued runs$/),
    });
    await expectQuotaRefused(root, /^user root has 1 of 1 queued runs$/);
  });

  it("is held to its adder's spend budget: a task past it starts nothing", async () => {
    const { deliver } = await forgeOfRevokedToken({});
    const set = await call("PUT", "/api/budgets/users/root", adminToken, { usd_per_day: 0 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const refused = await deliver("Spend");
    expect(refused.status, refused.body).toBe(429);
    expect(JSON.parse(refused.body).error).toMatchObject({
      code: "BUDGET_EXCEEDED",
      message: expect.stringContaining("user root's daily budget"),
    });
  });
});
