// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, inject, it } from "vitest";
import { tempDir } from "./helpers/cli.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { until } from "./helpers/processes.js";
import {
  api,
  isFinal,
  type Proc,
  readEvents,
  runnerToken,
  startRunner,
  startTestServer,
  stepDir,
  submit,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");
const secretKey = "retry-replica-secret-key-0123456789abcdef";
/** Replicas presume one another dead after 2 s of silence, so a test sees adoption quickly. */
const replicaTimings = { RUNYARD_REPLICA_HEARTBEAT_MS: "300", RUNYARD_REPLICA_LEASE_MS: "2000" };

const started: Proc[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((proc) => proc.kill("SIGKILL")));
});

async function replica(databaseUrl: string): Promise<TestServer> {
  const server = await startTestServer(tempDir(), {
    RUNYARD_DATABASE_URL: databaseUrl,
    RUNYARD_SECRET_KEY: secretKey,
    ...replicaTimings,
  });
  started.push(server.proc);
  return server;
}

/** build exports ARTIFACT; test fails until `fixed`, then waits for `go`; ship reads ARTIFACT. */
function flow(dir: string): string {
  return `name: release
steps:
  - name: build
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo build >> ran
        echo "ARTIFACT=app-7" >> "$RUNYARD_OUTPUT"
  - name: test
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo test >> ran
        [ -f fixed ] || exit 1
        until [ -f go ]; do sleep 0.05; done
  - name: ship
    action: shell.run
    args:
      cwd: ${dir}
      script: echo "ship \${ARTIFACT}" >> ran
`;
}

const ran = (dir: string) =>
  existsSync(join(dir, "ran")) ? readFileSync(join(dir, "ran"), "utf8").trim().split("\n") : [];

describe.skipIf(!adminUrl)("a retry on PostgreSQL with two replicas", () => {
  it("finishes once when the replica carrying it is killed -9 mid-run: kept steps stay kept, no step runs twice", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    const runnerProc = await startRunner(`${b.url},${a.url}`, await runnerToken(a.url), {
      id: "retry-replicas",
      capacity: 2,
    });
    started.push(runnerProc);
    const dir = stepDir();
    const first = await submit(a.url, flow(dir));
    expect((await waitForRun(a.url, first, isFinal, 60_000)).status).toBe("failed");
    expect(ran(dir)).toEqual(["build", "test"]);
    writeFileSync(join(dir, "fixed"), "");

    // The retry's engine lives on A, where it was submitted.
    const answer = await api<{ run_id: string; kept: string[] }>(
      a.url,
      "POST",
      `/api/runs/${first}/retry`,
      {},
    );
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    expect(answer.body.kept).toEqual(["build"]);
    const retry = answer.body.run_id;
    await until("the retry's test step runs", () => ran(dir).length === 3, 60_000);
    await a.proc.kill("SIGKILL");
    writeFileSync(join(dir, "go"), "");

    const done = await waitForRun(b.url, retry, isFinal, 60_000);
    expect(done.status, JSON.stringify(done)).toBe("success");
    expect(ran(dir)).toEqual(["build", "test", "test", "ship app-7"]);
    const events = await readEvents(b.url, retry);
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    const finishes = events
      .filter((e) => e.type === "step.finished")
      .map((e) => (e.type === "step.finished" ? e.step : ""));
    expect(finishes).toEqual(["build", "test", "ship"]);
    expect(events.filter((e) => e.type === "run.finished")).toHaveLength(1);
    expect(
      (await api<{ retries: { run_id: string }[] }>(b.url, "GET", `/api/runs/${first}`)).body.retries,
    ).toEqual([expect.objectContaining({ run_id: retry, status: "success" })]);
  }, 180_000);
});
