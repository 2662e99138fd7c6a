// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { createTestDatabase } from "./helpers/postgres.js";
import { until } from "./helpers/processes.js";
import { replicaFleet } from "./helpers/replica-fleet.js";
import {
  api,
  isFinal,
  readEvents,
  runnerToken,
  startRunner,
  stepDir,
  submit,
  waitForRun,
} from "./helpers/server.js";

const adminUrl = inject("postgresAdminUrl");
const fleet = replicaFleet({ secretKey: "retry-replica-secret-key-0123456789abcdef", leaseMs: 6_000 });
const replica = fleet.replica;

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
    fleet.track(runnerProc);
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
