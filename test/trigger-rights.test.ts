import { createHmac } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli, tempDir } from "./helpers/cli.js";
import { runOutput } from "./helpers/member-runs.js";
import {
  adminToken,
  api,
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * Who a triggered run acts as, against a real server: tenant admin ada's hook and schedule run
 * the version she (or an admin) promoted, never a newer one member amy saved; each run records
 * who triggered it and who wrote what it runs, with the lesser rights of the two.
 */

let server: TestServer;
let runner: Proc;
let shared: Proc;
let ada: string;
let amy: string;

const rel = (word: string, extra = "") => `name: rel
schedule: {cron: "0 3 * * *"}
steps:
  - name: say
    action: cmd.run
    args:
      cmd: echo ${word}
${extra}`;

const sign = (body: string, key: string) => `sha256=${createHmac("sha256", key).update(body).digest("hex")}`;

/** Where each hook made here takes its deliveries (its id, not its name). */
const deliveryPaths = new Map<string, string>();

async function deliver(hook: string, key: string, body: string) {
  const response = await fetch(new URL(deliveryPaths.get(hook) ?? `/api/hooks/${hook}`, server.url), {
    method: "POST",
    headers: { "content-type": "application/json", "x-hub-signature-256": sign(body, key) },
    body,
  });
  return { status: response.status, body: (await response.json()) as { run_id: string } };
}

interface RunAsView {
  saved_version: number;
  created_by_name: string | null;
  authored_by_name: string | null;
  trigger: string;
  status: string;
  error: { code: string; message: string } | null;
}

async function runOf(id: string, token = ada): Promise<RunAsView> {
  return (await api<RunAsView>(server.url, "GET", `/api/runs/${id}`, undefined, token)).body;
}

async function userToken(username: string, role: "admin" | "member"): Promise<string> {
  const password = `${username}-password-123`;
  const added = await api(server.url, "POST", "/api/users", { username, role, password, tenant_id: "acme" });
  expect(added.status, JSON.stringify(added.body)).toBe(201);
  const login = await api<{ token: string }>(server.url, "POST", "/api/auth/login", { username, password });
  expect(login.status).toBe(200);
  return login.body.token;
}

async function save(token: string, name: string, workflow: string) {
  const saved = await api<{
    version: number;
    promoted: boolean;
    waiting_for: Array<{ kind: string; name: string; owner_name: string | null }>;
  }>(server.url, "POST", "/api/workflows", { name, workflow }, token);
  expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  return saved.body;
}

async function makeHook(token: string, name: string, workflow: string): Promise<string> {
  const made = await api<{ secret: string; url: string }>(
    server.url,
    "POST",
    "/api/hooks",
    { name, workflow },
    token,
  );
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  deliveryPaths.set(name, made.body.url);
  return made.body.secret;
}

beforeAll(async () => {
  server = await startTestServer();
  ada = await userToken("ada", "admin");
  amy = await userToken("amy", "member");
  const acmeRunner = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
    kind: "runner",
    name: "acme runner",
    tenant_id: "acme",
  });
  runner = await startRunner(server.url, acmeRunner.body.token, { id: "acme-rights" });
  // A shared runner whose operator passes a variable of its env to platform admins' runs only.
  shared = await startRunner(server.url, await runnerToken(server.url), {
    id: "shared-rights",
    env: { OPERATOR_PASSED: "operator-value", RUNYARD_STEP_PASS_ENV: "OPERATOR_PASSED" },
  });
}, 60_000);

afterAll(async () => {
  await runner?.kill("SIGKILL");
  await shared?.kill("SIGKILL");
  await server?.proc.kill("SIGKILL");
});

describe("who a triggered run acts as", () => {
  it("keeps a tenant admin's hook and schedule on her version when a member saves a new one, until she promotes it", async () => {
    expect((await save(ada, "rel", rel("one"))).promoted).toBe(true);
    const key = await makeHook(ada, "rel-push", "rel");

    const second = await save(amy, "rel", rel("two"));
    expect(second.version).toBe(2);
    expect(second.promoted).toBe(false);
    expect(second.waiting_for).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ kind: "hook", name: "rel-push", owner_name: "ada" }),
        expect.objectContaining({ kind: "schedule", name: "0 3 * * *", owner_name: "ada" }),
      ]),
    );

    // The hook runs ada's version 1, triggered and written by ada; the schedule stays on it too.
    const first = await deliver("rel-push", key, JSON.stringify({ n: 1 }));
    expect(first.status, JSON.stringify(first.body)).toBe(202);
    expect(await runOf(first.body.run_id)).toMatchObject({
      trigger: "webhook",
      saved_version: 1,
      created_by_name: "ada",
      authored_by_name: "ada",
    });
    const schedules = async () =>
      (
        await api<{ schedules: Array<{ workflow: string; workflow_version: number }> }>(
          server.url,
          "GET",
          "/api/schedules",
          undefined,
          ada,
        )
      ).body.schedules.filter((s) => s.workflow === "rel");
    expect((await schedules()).map((s) => s.workflow_version)).toEqual([1]);

    const shown = await api<{ live_version: number; versions: Array<{ version: number; state: string }> }>(
      server.url,
      "GET",
      "/api/workflows/rel",
      undefined,
      amy,
    );
    expect(shown.body.live_version).toBe(1);
    expect(shown.body.versions.map((v) => [v.version, v.state])).toEqual([
      [2, "pending"],
      [1, "live"],
    ]);

    // The member may not promote her own version over ada's triggers.
    const refused = await api<{ error: { code: string; message: string; hint: string } }>(
      server.url,
      "POST",
      "/api/workflows/rel/promote",
      { version: 2 },
      amy,
    );
    expect(refused.status).toBe(403);
    expect(refused.body.error.message).toContain("hook rel-push");
    expect(refused.body.error.hint).toContain("runyard workflow promote");

    const promoted = await runCli(
      ["workflow", "promote", "rel", "2", "--server", server.url, "--token", ada],
      {
        cwd: tempDir(),
      },
    );
    expect(promoted.code, promoted.stderr).toBe(0);
    expect(promoted.stdout).toContain("workflow rel version 2 is live (was version 1)");
    expect((await schedules()).map((s) => s.workflow_version)).toEqual([2]);

    // Now the hook runs amy's version: triggered by ada, written by amy.
    const next = await deliver("rel-push", key, JSON.stringify({ n: 2 }));
    expect(next.status).toBe(202);
    expect(await runOf(next.body.run_id)).toMatchObject({
      saved_version: 2,
      created_by_name: "ada",
      authored_by_name: "amy",
    });
    const shownRun = await runCli(
      ["runs", "show", next.body.run_id, "--server", server.url, "--token", ada],
      {
        cwd: tempDir(),
      },
    );
    expect(shownRun.stdout).toContain("by: ada, written by amy");

    const again = await api<{ error: { code: string } }>(
      server.url,
      "POST",
      "/api/workflows/rel/promote",
      { version: 2 },
      ada,
    );
    expect(again.status).toBe(409);

    const { body: audit } = await api<{
      events: Array<{ action: string; target: string; details: { version: number } | null }>;
    }>(server.url, "GET", "/api/audit?action=workflow.promote", undefined, adminToken);
    expect(audit.events.filter((e) => e.target === "rel").map((e) => [e.action, e.details?.version])).toEqual(
      expect.arrayContaining([
        ["workflow.promote", 1],
        ["workflow.promote", 2],
      ]),
    );
    expect(audit.events.filter((e) => e.target === "rel" && e.details?.version === 2)).toHaveLength(1);

    // The CLI says a save waits, and lists each version's state.
    const file = join(tempDir(), "rel.yaml");
    writeFileSync(file, rel("three"));
    const cli = (args: string[], token: string) =>
      runCli([...args, "--server", server.url, "--token", token], { cwd: tempDir() });
    const third = await cli(["workflow", "save", file], amy);
    expect(third.code, third.stderr).toBe(0);
    expect(third.stdout).toContain("saved workflow rel version 3\n");
    expect(third.stdout).toContain(
      'pending: hook rel-push (ada), schedule "0 3 * * *" (ada) keep running the live version until a tenant admin or their owner runs `runyard workflow promote rel 3`',
    );
    const listed = await cli(["workflow", "show", "rel"], amy);
    expect(listed.stdout).toContain("live version: 2");
    expect(listed.stdout).toMatch(/3\s+pending\s+amy/);
    expect(listed.stdout).toMatch(/2\s+live\s+amy\s+\S+\s+ada/);
    expect(listed.stdout).toMatch(/1\s+promoted\s+ada/);
  }, 60_000);

  it("makes a member's save live at once when every trigger of the workflow is her own", async () => {
    await save(amy, "mine", rel("mine"));
    await makeHook(amy, "mine-push", "mine");
    const second = await save(amy, "mine", rel("mine again"));
    expect(second).toMatchObject({ version: 2, promoted: true, waiting_for: [] });
    // A tenant admin may act for anyone's trigger: her save is live at once too.
    expect((await save(ada, "mine", rel("ada's"))).promoted).toBe(true);
  }, 60_000);

  it("gives a hook's run the lesser rights of the hook's owner and the version's author", async () => {
    // A platform admin's version may name a cwd outside step_cwd_roots; a run triggered by
    // someone else's hook on it has that someone's rights, and may not.
    const cwdStep = `name: ops
steps:
  - name: here
    action: cmd.run
    args:
      cwd: ${tempDir()}
      cmd: echo ops
`;
    const saved = await api(
      server.url,
      "POST",
      "/api/workflows",
      { name: "ops", workflow: cwdStep },
      adminToken,
    );
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
    const adminKey = await makeHook(adminToken, "ops-admin", "ops");
    const byAdmin = await deliver("ops-admin", adminKey, JSON.stringify({ n: 1 }));
    expect(byAdmin.status, JSON.stringify(byAdmin.body)).toBe(202);

    const outsider = await api<{ token: string }>(server.url, "POST", "/api/tokens", {
      kind: "user",
      name: "outsider",
    });
    const key = await makeHook(outsider.body.token, "ops-outsider", "ops");
    const byOutsider = await deliver("ops-outsider", key, JSON.stringify({ n: 2 }));
    expect(byOutsider.status, JSON.stringify(byOutsider.body)).toBe(400);
    expect((byOutsider.body as unknown as { error: { code: string } }).error.code).toBe(
      "STEP_CWD_NOT_ALLOWED",
    );
  }, 60_000);

  it("gives a platform admin's re-run of someone else's run that someone's rights, not the admin's", async () => {
    const probe =
      'name: probe\nsteps:\n  - name: look\n    action: shell.run\n    args:\n      script: echo "passed=$OPERATOR_PASSED"\n';
    const outsider = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: "rerun outsider",
      })
    ).body.token;
    const output = async (runId: string) => {
      expect((await waitForRun(server.url, runId, isFinal)).status).toBe("success");
      return runOutput(server.url, runId);
    };
    const submitAs = async (token: string) =>
      (await api<{ run_id: string }>(server.url, "POST", "/api/runs", { workflow: probe }, token)).body
        .run_id;
    const rerunAs = async (runId: string) => {
      const answer = await api<{ run_id: string }>(
        server.url,
        "POST",
        `/api/runs/${runId}/rerun`,
        undefined,
        adminToken,
      );
      expect(answer.status, JSON.stringify(answer.body)).toBe(201);
      return answer.body.run_id;
    };
    const own = await submitAs(adminToken);
    expect(await output(own)).toContain("passed=operator-value");
    expect(await output(await rerunAs(own))).toContain("passed=operator-value");
    const theirs = await submitAs(outsider);
    expect(await output(theirs)).toContain("passed=\n");
    const rerun = await rerunAs(theirs);
    expect(await output(rerun)).toContain("passed=\n");
    expect(
      (await api<{ created_by: string; authored_by_name: string }>(server.url, "GET", `/api/runs/${rerun}`))
        .body.authored_by_name,
    ).toBe("rerun outsider");
  }, 60_000);
});
