import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventSequencer } from "../src/core/events.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { OrphanGuard } from "../src/exec/orphan-guard.js";
import type { Executor } from "../src/exec/types.js";
import { runWorkflow } from "../src/workflow/engine.js";
import { parseWorkflow } from "../src/workflow/parse.js";
import { type BenchRow, timed } from "./table.js";

const env = process.env as Record<string, string>;
const defaultExecutor = createExecutor({ baseEnv: env });

function bash(script: string, stdout: "ignore" | "pipe" = "ignore"): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { stdio: ["ignore", stdout, "inherit"] });
    child.stdout?.resume();
    child.on("error", reject);
    child.on("exit", () => resolve());
  });
}

export async function runFlow(yaml: string, executor: Executor = defaultExecutor): Promise<void> {
  const { workflow, diagnostics } = parseWorkflow(yaml, "bench.yaml");
  if (!workflow) throw new Error(diagnostics.map((d) => d.message).join("\n"));
  const runner = new LocalStepRunner(executor, { killGraceMs: 1000 });
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
export function trivialSteps(count: number): { commands: string[]; yaml: string } {
  const commands = Array.from({ length: count }, (_, i) => `/bin/echo step-${i}`);
  const yaml = `name: bench\nsteps:\n${commands.map((c, i) => `  - name: s${i}\n    action: cmd.run\n    args:\n      cmd: ${c}\n`).join("")}`;
  return { commands, yaml };
}

/** Medians of `a` and `b` run in turns, so that the load of a shared machine hits both alike. */
export async function alternating(
  runs: number,
  a: () => Promise<unknown>,
  b: () => Promise<unknown>,
): Promise<[number, number]> {
  const times: [number[], number[]] = [[], []];
  for (let i = 0; i < runs; i++) {
    times[0].push(await timed(a));
    times[1].push(await timed(b));
  }
  const mid = (values: number[]): number => values.sort((x, y) => x - y)[Math.floor(runs / 2)] ?? 0;
  return [mid(times[0]), mid(times[1])];
}

/**
 * How steps start (docs/runners.md): 200 trivial steps through the fork-server against the same
 * steps through Node's own spawn, its fallback.
 */
export async function forkServerGain(): Promise<BenchRow> {
  const { yaml } = trivialSteps(200);
  const spawned = createExecutor({ baseEnv: env, launcher: "spawn" });
  await runFlow(yaml, spawned); // warm-up
  const [ours, base] = await alternating(
    5,
    () => runFlow(yaml),
    () => runFlow(yaml, spawned),
  );
  spawned.close();
  return {
    name: "200 steps through the fork-server vs Node's spawn",
    measured: `${ours.toFixed(0)} ms`,
    baseline: `${base.toFixed(0)} ms`,
    ratio: ours / base,
    target: "<= 0.6",
  };
}

/**
 * What the orphan guard (journal lines and the reaper) costs a runner: 200 trivial steps with it
 * against the same steps without it, alternating so that drift hits both sides alike.
 */
export async function orphanGuardCost(): Promise<BenchRow> {
  const { yaml } = trivialSteps(200);
  const { guard } = await OrphanGuard.open(mkdtempSync(join(tmpdir(), "runyard-bench-guard-")), 1000);
  const guarded = createExecutor({ baseEnv: env, watch: guard });
  const bare = createExecutor({ baseEnv: env });
  await runFlow(yaml, guarded); // warm-up
  const with_: number[] = [];
  const without: number[] = [];
  for (let i = 0; i < 5; i++) {
    without.push(await timed(() => runFlow(yaml, bare)));
    with_.push(await timed(() => runFlow(yaml, guarded)));
  }
  guarded.close();
  bare.close();
  guard.close();
  const mid = (values: number[]): number => values.sort((a, b) => a - b)[2] ?? 0;
  return {
    name: "200 steps with the orphan guard vs without",
    measured: `${mid(with_).toFixed(0)} ms`,
    baseline: `${mid(without).toFixed(0)} ms`,
    ratio: mid(with_) / mid(without),
    target: "<= 1.05",
  };
}

export async function stepOverhead(): Promise<BenchRow> {
  const { commands, yaml } = trivialSteps(200);
  const dir = mkdtempSync(join(tmpdir(), "runyard-bench-"));
  const script = join(dir, "steps.sh");
  writeFileSync(script, `${commands.join("\n")}\n`);
  await runFlow(yaml); // warm-up
  const [ours, base] = await alternating(
    5,
    () => runFlow(yaml),
    () => bash(`bash ${script}`, "pipe"),
  );
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
  const [ours, base] = await alternating(
    3,
    () => runFlow(yaml),
    () => bash(`sh -c "${produce}" > /dev/null`),
  );
  const mb = 100;
  return {
    name: "one step printing 100 MB vs sh -c > /dev/null",
    measured: `${(mb / (ours / 1000)).toFixed(0)} MB/s`,
    baseline: `${(mb / (base / 1000)).toFixed(0)} MB/s`,
    ratio: base / ours,
    target: ">= 0.8",
  };
}
