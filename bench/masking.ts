import { randomBytes } from "node:crypto";
import type { StepAttemptRequest } from "../src/core/step-attempt.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { type BenchRow, median, timed } from "./table.js";

const megabytes = 100;

/** A step printing 100 MB of log lines, its output received the way the engine receives it. */
const executor = createExecutor({ baseEnv: { PATH: process.env.PATH ?? "/usr/bin:/bin" } });

async function printLog(env: Record<string, string>): Promise<void> {
  const runner = new LocalStepRunner(executor, { killGraceMs: 1000 });
  const request: StepAttemptRequest = {
    run_id: "run_bench",
    step: "log",
    host: "local",
    attempt: 1,
    action: "shell.run",
    script: `yes "compiling module 1234 of the build: ok (0.42s) src/app/main.ts" | head -c ${megabytes * 1024 * 1024}`,
    shell: "bash",
    env,
    export_vars: false,
    secrets: [],
    secret_names: [],
  };
  let received = 0;
  const result = await runner.runAttempt(request, {
    signal: new AbortController().signal,
    onOutput: (_stream, data) => {
      received += data.length;
    },
  });
  if (result.status !== "success" || received < megabytes * 1024 * 1024) {
    throw new Error(`bench step ${result.status}, ${received} characters received`);
  }
}

/**
 * Masking throughput: the same step and output with 100 secrets of 1 KB in its env (named
 * `*_TOKEN`, so masked) against the same 100 values under names that are not secret.
 */
export async function maskingThroughput(): Promise<BenchRow> {
  const values = Array.from({ length: 100 }, () => randomBytes(768).toString("base64"));
  const secretEnv = Object.fromEntries(values.map((value, i) => [`SERVICE_${i}_TOKEN`, value]));
  const plainEnv = Object.fromEntries(values.map((value, i) => [`SERVICE_${i}_NOTE`, value]));
  await printLog(secretEnv); // warm-up
  const base = await median(5, () => timed(() => printLog(plainEnv)));
  const ours = await median(5, () => timed(() => printLog(secretEnv)));
  return {
    name: `one step printing ${megabytes} MB, 100 secrets of 1 KB vs unmasked`,
    measured: `${(megabytes / (ours / 1000)).toFixed(0)} MB/s`,
    baseline: `${(megabytes / (base / 1000)).toFixed(0)} MB/s`,
    ratio: base / ours,
    target: ">= 0.8",
  };
}
