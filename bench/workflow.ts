import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventSequencer } from "../src/core/events.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { ProcessExecutor } from "../src/exec/process.js";
import { runWorkflow } from "../src/workflow/engine.js";
import { parseWorkflow } from "../src/workflow/parse.js";
import { type BenchRow, median, timed } from "./table.js";

const env = process.env as Record<string, string>;

function bash(script: string, stdout: "ignore" | "pipe" = "ignore"): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { stdio: ["ignore", stdout, "inherit"] });
    child.stdout?.resume();
    child.on("error", reject);
    child.on("exit", () => resolve());
  });
}

async function runFlow(yaml: string): Promise<void> {
  const { workflow, diagnostics } = parseWorkflow(yaml, "bench.yaml");
  if (!workflow) throw new Error(diagnostics.map((d) => d.message).join("\n"));
  const runner = new LocalStepRunner(new ProcessExecutor(), { baseEnv: env, killGraceMs: 1000 });
  const sequencer = new EventSequencer("run_bench");
  const outcome = await runWorkflow({
    workflow,
    runId: "run_bench",
    emit: (input) => sequencer.next(input),
    runnerFor: () => runner,
  });
  if (outcome.status !== "success")
    throw new Error(`bench workflow ${outcome.status}: ${outcome.error?.message}`);
}

/**
 * 200 one-line cmd.run steps against a bash script running the same 200 commands. The commands
 * are external programs (`/bin/echo`), so both sides start 200 processes: a builtin `echo`
 * would measure bash's parser, not a runner.
 */
export async function stepOverhead(): Promise<BenchRow> {
  const commands = Array.from({ length: 200 }, (_, i) => `/bin/echo step-${i}`);
  const yaml = `name: bench\nsteps:\n${commands.map((c, i) => `  - name: s${i}\n    action: cmd.run\n    args:\n      cmd: ${c}\n`).join("")}`;
  const dir = mkdtempSync(join(tmpdir(), "runyard-bench-"));
  const script = join(dir, "steps.sh");
  writeFileSync(script, `${commands.join("\n")}\n`);
  await runFlow(yaml); // warm-up
  const base = await median(5, () => timed(() => bash(`bash ${script}`, "pipe")));
  const ours = await median(5, () => timed(() => runFlow(yaml)));
  return {
    name: "200 trivial cmd.run steps vs bash script",
    measured: `${ours.toFixed(0)} ms`,
    baseline: `${base.toFixed(0)} ms`,
    ratio: ours / base,
    target: "<= 1.5",
  };
}

/** One step printing 100 MB against `sh -c` writing the same to /dev/null: throughput ratio. */
export async function outputThroughput(): Promise<BenchRow> {
  const produce = "head -c 104857600 /dev/zero | tr '\\0' 'x' | fold -w 100";
  const yaml = `name: bench\nsteps:\n  - name: big\n    action: shell.run\n    args:\n      script: |\n        ${produce}\n`;
  const base = await median(3, () => timed(() => bash(`sh -c "${produce}" > /dev/null`)));
  const ours = await median(3, () => timed(() => runFlow(yaml)));
  const mb = 100;
  return {
    name: "one step printing 100 MB vs sh -c > /dev/null",
    measured: `${(mb / (ours / 1000)).toFixed(0)} MB/s`,
    baseline: `${(mb / (base / 1000)).toFixed(0)} MB/s`,
    ratio: base / ours,
    target: ">= 0.5",
  };
}
