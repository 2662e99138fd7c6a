import { afterEach, describe, expect, it } from "vitest";
import type { QuotaSettings } from "../src/server/quotas.js";
import type { RunningServer, ServerOptions } from "../src/server/server.js";
import {
  adminToken,
  injectJson,
  signedInMember,
  startInProcessServer,
  tenantRunnerKnown,
} from "./helpers/in-process.js";

/*
 * A member's attacks on "whose run is it" (`created_by_user`): the runs a member's own triggers
 * and calls start must count as theirs against their run quota, whatever path starts them. A real
 * server in this process, real SQLite; no runner, so runs wait queued unless the test ends them.
 */

let server: RunningServer | undefined;

afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function start(quotas: QuotaSettings, extra: Partial<ServerOptions> = {}): Promise<RunningServer> {
  server = await startInProcessServer({ quotas, ...extra });
  return server;
}

async function call(method: string, url: string, token: string | undefined, body?: unknown) {
  if (!server) throw new Error("no server");
  return injectJson(server.app, method, url, { token, ...(body !== undefined ? { body } : {}) });
}

const hello = "name: hello\nsteps:\n  - name: hi\n    action: cmd.run\n    args:\n      cmd: echo hi\n";

async function until<T>(what: string, look: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = await look();
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("a schedule a member saved is held to their own run quota at each tick", () => {
  it("skips a tick while its owner is at their queued-run limit, saying why and storing no run; fires again once they are under it", async () => {
    const s = await start(
      { quotas: { users: { ann: { max_queued_runs: 1 } } } },
      { scheduleMinIntervalSeconds: 1, scheduleMaxRunsPerHour: 100_000 },
    );
    const ann = await signedInMember(s, "ann", "acme");
    const bob = await signedInMember(s, "bob", "acme");
    // ann's one queued run: she is at her limit.
    const own = await call("POST", "/api/runs", ann, { workflow: hello });
    expect(own.status, JSON.stringify(own.body)).toBe(201);
    const nightly = `name: nightly
schedule: {cron: "* * * * * *", overlap: queue}
steps:
  - {name: tick, action: cmd.run, args: {cmd: echo tick}}
`;
    const saved = await call("POST", "/api/workflows", ann, { name: "nightly", workflow: nightly });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const [schedule] = await s.store.schedules.list("acme");
    if (!schedule) throw new Error("the save armed no schedule");

    const skipped = await until("a tick of ann's schedule", async () =>
      (await s.store.schedules.ticks(schedule.id)).find((tick) => tick.outcome !== "missed"),
    );
    expect(skipped).toMatchObject({ outcome: "skipped", run_id: null });
    expect(skipped.detail).toContain("user ann has 1 of 1 queued runs");
    expect(skipped.detail).toContain("quotas.users.ann.max_queued_runs");
    const scheduled = async () =>
      (await s.store.runs.list({ tenantId: "acme", limit: 500 })).runs.filter(
        (run) => run.trigger === "schedule",
      );
    expect(await scheduled()).toEqual([]);
    // A teammate's room is not ann's: bob may still submit, and the schedule stays held.
    expect((await call("POST", "/api/runs", bob, { workflow: hello })).status).toBe(201);

    // Once ann's queued run is gone, the next tick starts her run.
    expect((await call("POST", `/api/runs/${own.body.run_id}/cancel`, ann)).status).toBe(200);
    const started = await until(
      "a scheduled run once ann is under her limit",
      async () => (await scheduled())[0],
    );
    expect(started.created_by_user).toBe((await s.store.users.findByName("ann"))?.id);
  });
});

describe("a schedule that replaces its previous run (overlap: cancel_previous)", () => {
  it("still replaces it when that run is what fills its owner's quota: one run for one, the count does not grow", async () => {
    const s = await start(
      { quotas: { users: { ann: { max_queued_runs: 1 } } } },
      { scheduleMinIntervalSeconds: 1, scheduleMaxRunsPerHour: 100_000 },
    );
    const ann = await signedInMember(s, "ann", "acme");
    const nightly = `name: nightly
schedule: {cron: "* * * * * *", overlap: cancel_previous}
steps:
  - {name: tick, action: cmd.run, args: {cmd: echo tick}}
`;
    const saved = await call("POST", "/api/workflows", ann, { name: "nightly", workflow: nightly });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const scheduled = async () =>
      (await s.store.runs.list({ tenantId: "acme", limit: 500 })).runs.filter(
        (run) => run.trigger === "schedule",
      );
    // The first tick's run fills ann's one queued place; the next one replaces it. The scheduler
    // does not wait for the cancel to land before it starts the next run: on a busy machine the
    // second run is stored while the first still ends, so the wait is for both.
    const runs = await until("a second scheduled run, and the first canceled", async () => {
      const found = await scheduled();
      return found.length >= 2 && found.some((run) => run.status === "canceled") ? found : undefined;
    });
    expect(runs.filter((run) => run.status === "canceled").length).toBeGreaterThanOrEqual(1);
    const [schedule] = await s.store.schedules.list("acme");
    const ticks = await s.store.schedules.ticks(schedule?.id ?? "");
    expect(ticks.filter((tick) => tick.outcome === "skipped")).toEqual([]);
    // Never more than her one queued run at once.
    const annId = (await s.store.users.findByName("ann"))?.id ?? "";
    expect((await s.store.runs.countActive({ user: annId })).queued).toBeLessThanOrEqual(1);
  });
});

describe("a workflow.call child is held to its submitter's own run quota", () => {
  it("fails the call step with QUOTA_EXCEEDED when the child would take the submitter past their limit, storing no child", async () => {
    const s = await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    await tenantRunnerKnown(s, "acme");
    const ann = await signedInMember(s, "ann", "acme");
    const bob = await signedInMember(s, "bob", "acme");
    const deploy = "name: deploy\nsteps:\n  - {name: build, action: cmd.run, args: {cmd: echo built}}\n";
    expect((await call("POST", "/api/workflows", ann, { name: "deploy", workflow: deploy })).status).toBe(
      201,
    );
    // The run waits at its gate (running, not queued) while ann fills her one queued place.
    const release = `name: release
steps:
  - name: gate
    action: approval
    args: {message: ship?, approvers: [bob]}
  - {name: ship, action: workflow.call, args: {workflow: deploy}}
`;
    const submitted = await call("POST", "/api/runs", ann, { workflow: release });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const runId = submitted.body.run_id as string;
    await until("the release run waiting at its gate", async () =>
      (await s.store.approvals.get(runId, "gate")) ? true : undefined,
    );
    const own = await call("POST", "/api/runs", ann, { workflow: hello });
    expect(own.status, JSON.stringify(own.body)).toBe(201);
    const approved = await call("POST", `/api/runs/${runId}/steps/gate/approve`, bob, {});
    expect(approved.status, JSON.stringify(approved.body)).toBe(200);

    // Either the call step ends refused, or (the hole) a child run of ann's is queued past her limit.
    const children = async () =>
      (await s.store.runs.list({ limit: 500 })).runs.filter((run) => run.parent_run_id === runId);
    const view = await until("the call step's end or its child", async () => {
      const body = (await call("GET", `/api/runs/${runId}`, ann)).body;
      const ship = body.steps.find((step: { name: string }) => step.name === "ship");
      return ship?.status === "failed" || (await children()).length > 0 ? body : undefined;
    });
    expect(await children()).toEqual([]);
    const ship = view.steps.find((step: { name: string }) => step.name === "ship");
    expect(ship?.error).toMatchObject({ code: "QUOTA_EXCEEDED", message: "user ann has 1 of 1 queued runs" });
  });
});

describe("a teammate, or a user made again under the submitter's name, on an agent run", () => {
  it("may not follow it up after the submitter revokes the token that submitted it, nor after the submitter is removed", async () => {
    const s = await start({});
    const ann = await signedInMember(s, "ann", "acme");
    const bob = await signedInMember(s, "bob", "acme");
    const laptop = await call("POST", "/api/tokens", ann, { kind: "user", name: "laptop" });
    expect(laptop.status, JSON.stringify(laptop.body)).toBe(201);
    const submitted = await call("POST", "/api/runs", laptop.body.token, {
      kind: "agent",
      agent: "openai",
      prompt: "add hello.py",
      env: { OPENAI_API_KEY: "sk-ann-own-key-0123456789" },
    });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const runId = submitted.body.run_id as string;
    const followUp = (token: string) =>
      call("POST", `/api/runs/${runId}/messages`, token, { text: "push to main" });
    // bob cannot revoke ann's token by its id (it is not his: 404), so it stays ann's.
    expect((await call("DELETE", `/api/tokens/${laptop.body.id}`, bob)).status).toBe(404);
    expect((await call("DELETE", `/api/tokens/${laptop.body.id}`, ann)).status).toBe(200);

    const byBob = await followUp(bob);
    expect(byBob.status, JSON.stringify(byBob.body)).toBe(403);
    expect(byBob.body.error.message).toContain("submitted by someone else");
    // ann passes the sender check (and meets the run's state: it still waits in the queue).
    const byAnn = await followUp(ann);
    expect(byAnn.status, JSON.stringify(byAnn.body)).toBe(409);

    expect((await call("DELETE", "/api/users/ann", adminToken)).status).toBe(200);
    const newAnn = await signedInMember(s, "ann", "acme");
    const byNewAnn = await followUp(newAnn);
    expect(byNewAnn.status, JSON.stringify(byNewAnn.body)).toBe(403);
    expect((await call("GET", `/api/runs/${runId}`, newAnn)).body.created_by_name).toBeNull();
    expect((await s.store.runs.list({ limit: 500 })).runs.map((run) => run.id)).toEqual([runId]);
  });
});

describe("a member's retry or re-run of someone else's run", () => {
  it("is the member's run: held to their own run quota (429, nothing stored), counted and named as theirs", async () => {
    const s = await start({ quotas: { users: { ann: { max_queued_runs: 1 } } } });
    const ann = await signedInMember(s, "ann", "acme");
    const carol = await adminOfTenant(s, "carol", "acme");
    const carols = await call("POST", "/api/runs", carol, { workflow: hello });
    expect(carols.status, JSON.stringify(carols.body)).toBe(201);
    const carolRun = carols.body.run_id as string;
    await s.store.runs.update(carolRun, { status: "failed" });
    const own = await call("POST", "/api/runs", ann, { workflow: hello });
    expect(own.status, JSON.stringify(own.body)).toBe(201);

    const count = async () => (await s.store.runs.list({ limit: 500 })).runs.length;
    const before = await count();
    for (const path of ["retry", "rerun"]) {
      const refused = await call("POST", `/api/runs/${carolRun}/${path}`, ann, {});
      expect(refused.status, `${path}: ${JSON.stringify(refused.body)}`).toBe(429);
      expect(refused.body.error).toMatchObject({
        code: "QUOTA_EXCEEDED",
        message: "user ann has 1 of 1 queued runs",
      });
    }
    expect(await count()).toBe(before);

    expect((await call("POST", `/api/runs/${own.body.run_id}/cancel`, ann)).status).toBe(200);
    const retried = await call("POST", `/api/runs/${carolRun}/retry`, ann, {});
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    const page = (await call("GET", `/api/runs/${retried.body.run_id}`, ann)).body;
    expect(page.created_by_name).toBe("ann");
    expect(page.authored_by_name).toBe("carol");
    expect((await s.store.runs.get(retried.body.run_id))?.created_by_user).toBe(
      (await s.store.users.findByName("ann"))?.id,
    );
    // The retry takes ann's one queued place: her next submit is refused, carol's is not.
    const next = await call("POST", "/api/runs", ann, { workflow: hello });
    expect(next.status, JSON.stringify(next.body)).toBe(429);
    expect((await call("POST", "/api/runs", carol, { workflow: hello })).status).toBe(201);
  });
});

/** An admin of `tenant` made through the API and signed in; returns their session token. */
async function adminOfTenant(s: RunningServer, username: string, tenant: string): Promise<string> {
  const password = `${username}-password-1234`;
  const made = await call("POST", "/api/users", adminToken, {
    username,
    role: "admin",
    password,
    tenant_id: tenant,
  });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  const login = await injectJson(s.app, "POST", "/api/auth/login", { body: { username, password } });
  expect(login.status).toBe(200);
  return login.body.token as string;
}

describe("names after the token that made something is revoked", () => {
  it("a run's author, a saved version's saver and a trigger waiting for its maker are still named: their user, never a user made again under that name", async () => {
    const s = await start({});
    const ann = await signedInMember(s, "ann", "acme");
    const bob = await signedInMember(s, "bob", "acme");
    const laptop = await call("POST", "/api/tokens", ann, { kind: "user", name: "laptop" });
    expect(laptop.status, JSON.stringify(laptop.body)).toBe(201);
    const saved = await call("POST", "/api/workflows", laptop.body.token, {
      name: "deploy",
      workflow: hello,
    });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const hook = await call("POST", "/api/hooks", laptop.body.token, {
      name: "on-push",
      workflow: "deploy",
      secret: "a-long-hook-secret-0123456789abcdef",
    });
    expect(hook.status, JSON.stringify(hook.body)).toBe(201);
    const submitted = await call("POST", "/api/runs", laptop.body.token, { workflow: hello });
    expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
    const annRun = submitted.body.run_id as string;
    await s.store.runs.update(annRun, { status: "failed" });
    expect((await call("DELETE", `/api/tokens/${laptop.body.id}`, ann)).status).toBe(200);

    // bob's save waits for ann's hook: it says whom to ask.
    const bobs = await call("POST", "/api/workflows", bob, {
      name: "deploy",
      workflow: hello.replace("hi", "bob"),
    });
    expect(bobs.status, JSON.stringify(bobs.body)).toBe(201);
    expect(bobs.body.waiting_for).toEqual([expect.objectContaining({ kind: "hook", owner_name: "ann" })]);
    const versions = (await call("GET", "/api/workflows/deploy", bob)).body.versions;
    expect(versions.find((v: { version: number }) => v.version === 1)?.created_by_name).toBe("ann");
    // bob's retry of ann's run is his, of ann's text.
    const retried = await call("POST", `/api/runs/${annRun}/retry`, bob, {});
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    const page = (await call("GET", `/api/runs/${retried.body.run_id}`, bob)).body;
    expect(page).toMatchObject({ created_by_name: "bob", authored_by_name: "ann" });

    // ann removed and a new ann made: nothing of the first is named hers.
    expect((await call("DELETE", "/api/users/ann", adminToken)).status).toBe(200);
    const newAnn = await signedInMember(s, "ann", "acme");
    const again = await call("POST", "/api/workflows", newAnn, {
      name: "deploy",
      workflow: hello.replace("hi", "new"),
    });
    expect(again.body.waiting_for).toEqual([expect.objectContaining({ kind: "hook", owner_name: null })]);
    expect((await call("GET", `/api/runs/${retried.body.run_id}`, newAnn)).body.authored_by_name).toBeNull();
    expect((await call("GET", `/api/runs/${annRun}`, newAnn)).body.created_by_name).toBeNull();
  });
});

describe("a member's retry of a tenant admin's run with an agent step", () => {
  it("spends the member's own budget: at its end, the retry's turn is refused while the admin's own turns are not", async () => {
    const s = await start({});
    await s.store.runners.upsert({
      id: "agent-runner-acme",
      group: "default",
      labels: ["agent:openai", "mode:chat"],
      mode: "all",
      capacity: 1,
      hostname: "host-acme",
      tenant_id: "acme",
    });
    const ann = await signedInMember(s, "ann", "acme");
    const carol = await adminOfTenant(s, "carol", "acme");
    const set = await call("PUT", "/api/budgets/users/ann", adminToken, { usd_per_day: 0 });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    const triage = `name: triage
steps:
  - name: look
    action: agent.run
    args: {agent: openai, prompt: "say hi"}
`;
    const carols = await call("POST", "/api/runs", carol, { workflow: triage });
    expect(carols.status, JSON.stringify(carols.body)).toBe(201);
    const carolRun = carols.body.run_id as string;
    // carol's turn is admitted (no budget of hers): it waits for the runner, so she stops it.
    await until("carol's turn waiting for a runner", async () =>
      (await s.store.jobs.list()).some((job) => job.run_id === carolRun) ? true : undefined,
    );
    expect((await call("POST", `/api/runs/${carolRun}/cancel`, carol)).status).toBe(200);
    await until("carol's run canceled", async () =>
      (await s.store.runs.get(carolRun))?.status === "canceled" ? true : undefined,
    );

    const retried = await call("POST", `/api/runs/${carolRun}/retry`, ann, {});
    expect(retried.status, JSON.stringify(retried.body)).toBe(201);
    const ended = await until("ann's retry's end", async () => {
      const view = (await call("GET", `/api/runs/${retried.body.run_id}`, ann)).body;
      return ["failed", "success", "canceled"].includes(view.status) ? view : undefined;
    });
    const look = ended.steps.find((step: { name: string }) => step.name === "look");
    expect(look?.error?.code, JSON.stringify(ended.steps)).toBe("BUDGET_EXCEEDED");
    expect(look?.error?.message).toContain("user ann's daily budget");
    expect((await s.store.jobs.list()).filter((job) => job.run_id === retried.body.run_id)).toEqual([]);
  });
});
