import { afterEach, describe, expect, it } from "vitest";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

const workflow = (name: string) => `
version: v0.1
name: ${name}
inventory:
  hosts:
    worker: {}
steps:
  - name: where
    targets: [worker]
    action: cmd.run
    args:
      cmd: echo "ran on $RUNYARD_HOST"
`;

async function token(server: TestServer, body: Record<string, string>): Promise<string> {
  const { status, body: created } = await api<{ token: string }>(server.url, "POST", "/api/tokens", body);
  expect(status).toBe(201);
  return created.token;
}

async function submitAs(server: TestServer, bearer: string, name: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: workflow(name) },
    bearer,
  );
  expect(status).toBe(201);
  return body.run_id;
}

describe("tenants and runners", () => {
  it("never hands tenant A's job to tenant B's runner; A's own runner takes it", async () => {
    const server = await startTestServer();
    started.push(server.proc);
    const acme = await token(server, { kind: "user", name: "acme", tenant_id: "acme" });
    const globex = await token(server, { kind: "user", name: "globex", tenant_id: "globex" });
    const globexRunner = await token(server, { kind: "runner", name: "globex runner", tenant_id: "globex" });
    const acmeRunner = await token(server, { kind: "runner", name: "acme runner", tenant_id: "acme" });

    started.push(await startRunner(server.url, globexRunner, { id: "globex-runner", capacity: 1 }));
    // A's run is queued first: a runner that could take it would take it first (oldest first).
    const acmeRun = await submitAs(server, acme, "acme-work");
    const globexRun = await submitAs(server, globex, "globex-work");
    expect((await waitForRun(server.url, globexRun, isFinal)).status).toBe("success");

    // B's runner has been offered work since A's run was queued, and did not get A's job.
    const { body: waiting } = await api<{ status: string }>(server.url, "GET", `/api/runs/${acmeRun}`);
    expect(waiting.status).toBe("queued");
    const { body: jobs } = await api<Array<{ id: string; running_jobs: string[] }>>(
      server.url,
      "GET",
      "/api/runners",
    );
    expect(jobs.find((runner) => runner.id === "globex-runner")?.running_jobs).toEqual([]);
    // B's member cannot see A's run at all.
    expect((await api(server.url, "GET", `/api/runs/${acmeRun}`, undefined, globex)).status).toBe(404);

    started.push(await startRunner(server.url, acmeRunner, { id: "acme-runner", capacity: 1 }));
    const done = await waitForRun(server.url, acmeRun, isFinal);
    expect(done.status).toBe("success");
    const started_ = (await readEvents(server.url, acmeRun)).find((event) => event.type === "run.started");
    expect(started_).toMatchObject({ type: "run.started", runner_id: "acme-runner" });
  });
});
