import { existsSync } from "node:fs";
import { describe, expect, inject, it } from "vitest";
import { outputLine, runOutput } from "./helpers/member-runs.js";
import { createTestDatabase } from "./helpers/postgres.js";
import { replicaFleet } from "./helpers/replica-fleet.js";
import { runEvent } from "./helpers/run-event.js";
import { api, runnerToken, startRunner, submit } from "./helpers/server.js";

/*
 * A run's end told to the runner that kept its folders, across replicas on one database: the run
 * is carried by the replica it was submitted to, its step ran on a runner connected to the other,
 * and that replica tells its runner (`run_ended`). A runner away at the run's end learns it at its
 * next hello. The runners keep the default keep timer (6 h): a removal is the server's word.
 */

const adminUrl = inject("postgresAdminUrl");
const fleet = replicaFleet({ secretKey: "run-end-replicas-secret-key-0123456789abcdef", leaseMs: 10_000 });

/**
 * Replicas A and B on a database of their own, and a sandboxing runner `id` (its group too) joined
 * to B only, its log saying what it does with runs' folders.
 */
async function pairWithRunner(id: string) {
  const databaseUrl = await createTestDatabase(adminUrl);
  const a = await fleet.replica(databaseUrl);
  const b = await fleet.replica(databaseUrl);
  const env = { RUNYARD_LOG_LEVEL: "info" };
  const worker = fleet.track(await startRunner(b.url, await runnerToken(a.url), { id, group: id, env }));
  return { databaseUrl, a, b, worker };
}

/** A step on the runner of group `group` that writes to its run's /tmp and folder, and maybe an approval. */
function workflow(group: string, approval: boolean): string {
  const lines = [
    "version: v0.1",
    "name: run-end-replicas",
    "inventory:",
    "  hosts:",
    `    worker: {group: ${group}}`,
    "steps:",
    "  - name: write",
    "    targets: [worker]",
    "    action: shell.run",
    "    args:",
    "      script: |",
    '        echo "folder=$(pwd)"',
    "        echo in-tmp > /tmp/handoff.txt",
    "        echo in-folder > note.txt",
  ];
  if (approval)
    lines.push(
      "  - name: gate",
      "    action: approval",
      "    args:",
      '      message: "go on?"',
      '      approvers: ["role:admin"]',
      "      timeout_seconds: 600",
    );
  return `${lines.join("\n")}\n`;
}

const removedAtEnd = (runId: string) => `removed run ${runId}'s folders and sandbox: its run ended`;

describe("a run's end across replicas", () => {
  it("is told to the runner of another replica than the one that carried the run", async () => {
    const { a, worker } = await pairWithRunner("end-elsewhere");
    // Submitted to A, which carries it; its step runs on the runner connected to B.
    const runId = await submit(a.url, workflow("end-elsewhere", false));
    const finished = await runEvent(a.url, runId, (event) => event.type === "run.finished");
    expect(finished.type === "run.finished" && finished.status).toBe("success");
    await worker.waitFor(removedAtEnd(runId), 30_000);
    const folder = outputLine(await runOutput(a.url, runId), "folder")!;
    expect(folder).toMatch(new RegExp(`/runs/${runId}$`));
    expect(existsSync(folder)).toBe(false);
  });

  it("is told to a runner that was away when the run ended, at its next hello", async () => {
    const { databaseUrl, a, b, worker } = await pairWithRunner("end-away");
    const runId = await submit(a.url, workflow("end-away", true));
    // Its output so far (the run's whole output is read only once it has ended).
    const said = await runEvent(
      a.url,
      runId,
      (event) => event.type === "step.output" && /^folder=/m.test(event.data),
    );
    const folder = outputLine(said.type === "step.output" ? said.data : "", "folder")!;
    await runEvent(a.url, runId, (event) => event.type === "step.waiting");
    expect(existsSync(folder)).toBe(true);
    // B, the runner's only server, goes; the run ends on A meanwhile.
    await b.proc.kill("SIGKILL");
    const answered = await api(a.url, "POST", `/api/runs/${runId}/steps/gate/approve`, {});
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
    await runEvent(a.url, runId, (event) => event.type === "run.finished");
    expect(worker.output()).not.toContain(removedAtEnd(runId));
    expect(existsSync(folder)).toBe(true);
    // B again, where it was: the runner's hello names the run, and B answers that it ended.
    await fleet.replica(databaseUrl, Number(new URL(b.url).port));
    await worker.waitFor(removedAtEnd(runId), 60_000);
    expect(existsSync(folder)).toBe(false);
  });
});
