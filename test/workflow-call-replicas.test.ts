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
const fleet = replicaFleet({ secretKey: "call-replica-secret-key-0123456789abcdef", leaseMs: 6_000 });
const replica = fleet.replica;

/** The called workflow: its one step notes it ran, waits for `go`, and exports BUILT. */
const deploy = (dir: string) => `name: deploy
inputs:
  INPUT_ENV: {type: string, required: true}
outputs:
  URL: "https://\${INPUT_ENV}.example/\${BUILT}"
steps:
  - name: build
    action: shell.run
    args:
      cwd: ${dir}
      script: |
        echo "child build $INPUT_ENV" >> ran
        until [ -f go ]; do sleep 0.05; done
        echo "BUILT=b9" >> "$RUNYARD_OUTPUT"
`;

const release = (dir: string) => `name: release
steps:
  - name: ship
    action: workflow.call
    args:
      workflow: deploy
      inputs: {INPUT_ENV: staging}
  - name: announce
    action: shell.run
    args:
      cwd: ${dir}
      script: echo "announce \${URL}" >> ran
`;

const ran = (dir: string) =>
  existsSync(join(dir, "ran")) ? readFileSync(join(dir, "ran"), "utf8").trim().split("\n") : [];

interface CallView {
  status: string;
  vars: Record<string, string>;
  calls?: Array<{ step: string; run_id: string; status: string }>;
  parent_run_id: string | null;
}

describe.skipIf(!adminUrl)("workflow.call on PostgreSQL with two replicas", () => {
  it("finishes once when the replica carrying the caller and its child is killed -9 mid-call: one child, its step run once, the parent gets its outputs", async () => {
    const databaseUrl = await createTestDatabase(adminUrl);
    const a = await replica(databaseUrl);
    const b = await replica(databaseUrl);
    const runnerProc = await startRunner(`${b.url},${a.url}`, await runnerToken(a.url), {
      id: "call-replicas",
      capacity: 2,
    });
    fleet.track(runnerProc);
    const dir = stepDir();
    const saved = await api(a.url, "POST", "/api/workflows", { name: "deploy", workflow: deploy(dir) });
    expect(saved.status, JSON.stringify(saved.body)).toBe(201);

    // The parent's engine, and the child's it submits, live on A.
    const parent = await submit(a.url, release(dir));
    await until("the child's step runs", () => ran(dir).length === 1, 60_000);
    const during = await api<CallView>(a.url, "GET", `/api/runs/${parent}`);
    const child = during.body.calls?.[0]?.run_id;
    expect(child, JSON.stringify(during.body)).toBeTruthy();
    await a.proc.kill("SIGKILL");
    writeFileSync(join(dir, "go"), "");

    const done = (await waitForRun(b.url, parent, isFinal, 90_000).catch((error) => {
      throw new Error(`${error}\nreplica B said:\n${b.proc.output().slice(-4000)}`);
    })) as unknown as CallView;
    expect(done.status, JSON.stringify(done)).toBe("success");
    expect(done.vars).toMatchObject({ URL: "https://staging.example/b9" });
    expect(ran(dir)).toEqual(["child build staging", "announce https://staging.example/b9"]);

    // One child, linked to the parent, that ran its step once and finished once.
    const shown = (await api<CallView>(b.url, "GET", `/api/runs/${parent}`)).body;
    expect(shown.calls).toEqual([
      expect.objectContaining({ step: "ship", run_id: child, status: "success" }),
    ]);
    const all = (
      await api<{ runs: Array<{ run_id: string; parent_run_id?: string | null }> }>(
        b.url,
        "GET",
        "/api/runs?limit=500",
      )
    ).body.runs;
    expect(all.map((r) => r.run_id).sort()).toEqual([parent, child].sort());
    const childEvents = await readEvents(b.url, child!);
    expect(childEvents.map((e) => e.seq)).toEqual(childEvents.map((_, i) => i + 1));
    expect(childEvents.filter((e) => e.type === "step.started")).toHaveLength(1);
    expect(childEvents.filter((e) => e.type === "run.finished")).toHaveLength(1);
    const parentEvents = await readEvents(b.url, parent);
    expect(parentEvents.map((e) => e.seq)).toEqual(parentEvents.map((_, i) => i + 1));
    expect(parentEvents.filter((e) => e.type === "step.called")).toHaveLength(1);
    expect(parentEvents.filter((e) => e.type === "run.finished")).toHaveLength(1);
    const finishes = parentEvents
      .filter((e) => e.type === "step.finished")
      .map((e) => (e.type === "step.finished" ? e.step : ""));
    expect(finishes).toEqual(["ship", "announce"]);
  }, 240_000);
});
