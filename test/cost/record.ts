import { appendFileSync } from "node:fs";
import { join } from "node:path";

/**
 * What a test file starts, as the cost map counts it (docs/test-cost.md). The helpers that start
 * things call `recordStart`; Docker containers and pods are counted by the reporter itself from
 * Docker's events.
 */
export type StartKind =
  | "server"
  | "runner"
  | "up"
  | "cli"
  | "postgres"
  | "model server"
  | "forge server"
  | "kubernetes server"
  | "browser";

/**
 * One line of a worker's record: a test file started a `kind`, or a runner of its connected under
 * `runnerId` (how the reporter finds the file whose runner started a container).
 */
export type StartRecord = { file: string; at: number } & (
  | { kind: StartKind }
  | { runnerId: string }
  | { cpuSeconds: number }
);

type What = { kind: StartKind } | { runnerId: string } | { cpuSeconds: number };

/** The folder the cost reporter (test/cost/reporter.ts) sets before the workers start. */
export const costFolderEnv = "RUNYARD_TEST_COST_DIR";

const folder = process.env[costFolderEnv];
// Only inside a run with the reporter on: `npm run bench` shares postgres-cluster.ts and the model
// server, and must not load vitest.
const vitest = folder ? await import("vitest") : undefined;

/** Notes that the running test file started a `kind`; nothing without the reporter. */
export function recordStart(kind: StartKind): void {
  write({ kind });
}

/** Notes that a runner of the running test file's goes by `runnerId` (its containers' label). */
export function recordRunnerId(runnerId: string): void {
  write({ runnerId });
}

/**
 * Notes the CPU the running test file used: its worker's own and that of the processes it started
 * and reaped (its servers, runners, CLI runs and their steps).
 */
export function recordCpu(cpuSeconds: number): void {
  write({ cpuSeconds });
}

function write(what: What): void {
  if (!folder || !vitest) return;
  let file: string | undefined;
  try {
    file = vitest.expect.getState().testPath;
  } catch {
    // outside a test file (a global setup): not a file's cost
  }
  if (!file) return;
  const record: StartRecord = { file, at: Date.now(), ...what };
  appendFileSync(join(folder, `${process.pid}.jsonl`), `${JSON.stringify(record)}\n`);
}
