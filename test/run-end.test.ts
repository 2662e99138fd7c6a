import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { outputLine, runOutput } from "./helpers/member-runs.js";
import { runEvent } from "./helpers/run-event.js";
import { type SandboxedUp, startSandboxedUp } from "./helpers/sandboxed-up.js";
import { api, waitForRun } from "./helpers/server.js";

/**
 * A run's folders and sandbox on a sandboxing runner last as long as the run, told by the server
 * (`run_ended`), not by the runner's timers: they go as soon as the run is over, and a run that
 * waits between its steps (an approval) keeps them however long it waits, even with the keep
 * timer (the fallback of a server that never says a run's end) set to a second.
 */
let up: SandboxedUp;

/** The fallback timer: a second, shorter than any wait below. */
const keepSecs = 1;

beforeAll(async () => {
  // Its runner's log says what it does with a run's folders (removed, kept while idle).
  up = await startSandboxedUp({ RUNYARD_RUN_TMP_KEEP_SECS: String(keepSecs), RUNYARD_LOG_LEVEL: "info" });
});

/** Runs that wait for an approval: canceled at the end should a test fail before answering it. */
const waiting: string[] = [];

afterAll(async () => {
  for (const runId of waiting) await api(up.url, "POST", `/api/runs/${runId}/cancel`, {});
  await up?.proc.kill();
});

/** A step of the local runner, or an approval the admin token may answer. */
type Step = { name: string; script: string } | { name: string; approval: true };

function workflow(steps: Step[]): string {
  const lines = ["version: v0.1", "name: run-end", "inventory:", "  hosts:", "    local: {}", "steps:"];
  for (const step of steps) {
    lines.push(`  - name: ${step.name}`);
    if ("approval" in step) {
      lines.push(
        "    action: approval",
        "    args:",
        '      message: "go on?"',
        '      approvers: ["role:admin"]',
        "      timeout_seconds: 600",
      );
      continue;
    }
    lines.push("    targets: [local]", "    action: shell.run", "    args:", "      script: |");
    lines.push(...step.script.split("\n").map((line) => `        ${line}`));
  }
  return `${lines.join("\n")}\n`;
}

async function submit(steps: Step[]): Promise<string> {
  // The admin token's run, outside any tenant: its approval is the admin's to answer.
  const { status, body } = await api<{ run_id: string }>(up.url, "POST", "/api/runs", {
    kind: "workflow",
    workflow: workflow(steps),
    vars: {},
  });
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

/** Where the runner keeps `runId`'s /tmp, home and scratch files: its state folder in the home. */
function privateFolderOf(runId: string): string {
  const runners = join(up.home, "runners");
  const [runner] = readdirSync(runners);
  const name = /^[A-Za-z0-9_-]+$/.test(runId) ? runId : `run-${encodeURIComponent(runId)}`;
  return join(runners, runner!, "runs", name);
}

/** The runner's log line saying it removed the run's folders because the server said it ended. */
const removedAtEnd = (runId: string) => `removed run ${runId}'s folders and sandbox: its run ended`;

const writeStep = {
  name: "write",
  script: [
    'echo "folder=$(pwd)"',
    'echo "ns=$(readlink /proc/self/ns/pid)"',
    "echo in-tmp > /tmp/handoff.txt",
    "echo in-folder > note.txt",
  ].join("\n"),
};
const readStep = {
  name: "read",
  script: ['echo "ns2=$(readlink /proc/self/ns/pid)"', "cat /tmp/handoff.txt note.txt"].join("\n"),
};

describe("a run's folders on a sandboxing runner", () => {
  it("are removed as soon as the run ends, on the server's word, not a timer's", async () => {
    const runId = await submit([writeStep, readStep]);
    await runEvent(up.url, runId, (event) => event.type === "run.finished");
    // The runner says it removed them because the run ended: no timer did it.
    await up.proc.waitFor(removedAtEnd(runId), 30_000);
    const output = await runOutput(up.url, runId);
    expect(output).toContain("in-tmp\nin-folder\n");
    const folder = outputLine(output, "folder")!;
    expect(folder).toMatch(new RegExp(`/runs/${runId}$`));
    expect(existsSync(folder)).toBe(false);
    expect(existsSync(privateFolderOf(runId))).toBe(false);
    expect((await waitForRun(up.url, runId, (view) => view.status !== "running")).status).toBe("success");
  });

  it("are kept, with its sandbox, while the run waits for an approval longer than the keep timer", async () => {
    const runId = await submit([writeStep, { name: "gate", approval: true }, readStep]);
    // A run left waiting would hold `up` past the file's end (its approval wait outlives the store).
    waiting.push(runId);
    await runEvent(up.url, runId, (event) => event.type === "step.waiting");
    // The keep timer passed with no job of the run held here: the runner says it keeps the folders.
    await up.proc.waitFor(
      new RegExp(`run ${runId} held no job here for ${keepSecs} s: its folders stay until it ends`),
      30_000,
    );
    expect(readFileSync(join(privateFolderOf(runId), "tmp", "handoff.txt"), "utf8")).toBe("in-tmp\n");
    const answered = await api(up.url, "POST", `/api/runs/${runId}/steps/gate/approve`, {});
    expect(answered.status, JSON.stringify(answered.body)).toBe(200);
    const finished = await runEvent(up.url, runId, (event) => event.type === "run.finished");
    const output = await runOutput(up.url, runId);
    expect(finished.type === "run.finished" && finished.status, output).toBe("success");
    // The step after the wait found the run's /tmp and folder, in the same sandbox.
    expect(output).toContain("in-tmp\nin-folder\n");
    expect(outputLine(output, "ns")).toMatch(/^pid:\[\d+\]$/);
    expect(outputLine(output, "ns2")).toBe(outputLine(output, "ns"));
    await up.proc.waitFor(removedAtEnd(runId), 30_000);
    expect(existsSync(outputLine(output, "folder")!)).toBe(false);
    expect(existsSync(privateFolderOf(runId))).toBe(false);
  });
});
