import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  api,
  isFinal,
  type Proc,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

/*
 * A workflow.call's child run is a run of the caller's tenant like any submitted one: it counts
 * against the tenant's quotas, and a child past one is refused with the quota's error, which
 * fails the call step; no child is stored.
 */

interface View {
  run_id: string;
  status: string;
  tenant_id?: string | null;
  steps: Array<{ name: string; status: string; error?: { code: string; message: string; hint?: string } }>;
  calls?: Array<{ run_id: string }>;
}

const deploy = `name: deploy
steps:
  - {name: build, action: cmd.run, args: {cmd: "echo built"}}
`;
// The first step runs on the runner, so the caller is stored as running when it calls.
const release = `name: release
steps:
  - {name: prepare, action: cmd.run, args: {cmd: "echo ready"}}
  - name: ship
    action: workflow.call
    args: {workflow: deploy}
  - {name: announce, action: cmd.run, args: {cmd: "echo shipped"}}
`;

describe("workflow.call and the tenant's quotas", () => {
  let server: TestServer;
  let runner: Proc;
  let token: string;
  const submit = (workflow: string) =>
    api<{ run_id: string }>(server.url, "POST", "/api/runs", { kind: "workflow", workflow }, token);
  const ended = async (id: string) => (await waitForRun(server.url, id, isFinal, 90_000)) as unknown as View;
  const runsOfTenant = async () =>
    (await api<{ runs: View[] }>(server.url, "GET", "/api/runs?limit=500", undefined, token)).body.runs;

  beforeAll(async () => {
    // Every tenant may have 2 runs running at once.
    server = await startTestServer(undefined, { RUNYARD_DEFAULT_MAX_CONCURRENT_RUNS: "2" });
    token = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "user",
        name: "member of acme",
        tenant_id: "acme",
      })
    ).body.token;
    const runnerToken = (
      await api<{ token: string }>(server.url, "POST", "/api/tokens", {
        kind: "runner",
        name: "runner of acme",
        tenant_id: "acme",
      })
    ).body.token;
    runner = await startRunner(server.url, runnerToken, { id: "call-quotas", capacity: 4 });
    const saved = await api(
      server.url,
      "POST",
      "/api/workflows",
      { name: "deploy", workflow: deploy },
      token,
    );
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);
  }, 60_000);

  afterAll(async () => {
    await runner?.kill();
    await server?.proc.kill();
  });

  it("a call under the limit runs its child (the caller and its child make 2 of 2)", async () => {
    const run = await submit(release);
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const done = await ended(run.body.run_id);
    expect(done.status, JSON.stringify(done)).toBe("success");
  }, 120_000);

  it("a child past the tenant's max_concurrent_runs fails the call step with QUOTA_EXCEEDED and is not stored", async () => {
    // A run of the tenant that holds its slot until it is canceled.
    const blocker = await submit(
      `name: hold\nsteps:\n  - {name: wait, action: cmd.run, args: {cmd: "sleep 120"}}\n`,
    );
    expect(blocker.status, JSON.stringify(blocker.body)).toBe(201);
    await waitForRun(server.url, blocker.body.run_id, (r) => r.status === "running", 60_000);
    const before = (await runsOfTenant()).length;

    // The caller is the second running run: accepted; its child would be the third.
    const run = await submit(release);
    expect(run.status, JSON.stringify(run.body)).toBe(201);
    const done = await ended(run.body.run_id);
    expect(done.status).toBe("failed");
    const ship = done.steps.find((s) => s.name === "ship");
    expect(ship?.status).toBe("failed");
    expect(ship?.error).toMatchObject({
      code: "QUOTA_EXCEEDED",
      message: "tenant acme has 2 of 2 concurrent runs",
    });
    expect(done.steps.find((s) => s.name === "announce")?.status).toBe("skipped");
    expect(done.calls ?? []).toEqual([]);
    // Only the caller was added: no child run was stored.
    expect((await runsOfTenant()).length).toBe(before + 1);

    await api(server.url, "POST", `/api/runs/${blocker.body.run_id}/cancel`, undefined, token);
    expect((await ended(blocker.body.run_id)).status).toBe("canceled");
  }, 120_000);
});
