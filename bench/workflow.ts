import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventSequencer } from "../src/core/event-sequencer.js";
import { createExecutor } from "../src/exec/create-executor.js";
import { LocalStepRunner } from "../src/exec/local-runner.js";
import { OrphanGuard } from "../src/exec/orphan-guard.js";
import type { Executor } from "../src/exec/types.js";
import { runWorkflow } from "../src/workflow/engine.js";
import { parseWorkflow } from "../src/workflow/parse.js";
import {
  benchFile,
  cli,
  cpuAndWall,
  median,
  type ProcessTimes,
  paired,
  processTimes,
  runyardRunCpuNote,
  runyardRunThroughputNote,
} from "./processes.js";
import { type BenchRow, timed } from "./table.js";

const env = process.env as Record<string, string>;
const defaultExecutor = createExecutor({ baseEnv: env });

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

/**
 * `runyard run` as a user's shell starts it: locally, never submitted to a server the shell
 * names; `-q` unless the row is about the output it prints.
 */
function runyardRun(file: string, quiet = true): () => Promise<ProcessTimes> {
  const env = { ...process.env };
  delete env.RUNYARD_SERVER_URL;
  delete env.AVTOMATIKA_URL;
  return () => processTimes(process.execPath, [cli, "run", file, ...(quiet ? ["-q"] : [])], env);
}

/**
 * `runyard run` of a one-step workflow against `node -e 0`: both whole processes, taken in turns.
 * Beside it, the same workflow run inside this process (no Node start, no module loading).
 */
export async function oneStepRun(): Promise<BenchRow> {
  const yaml = "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n";
  const file = benchFile("one.yaml", yaml);
  const {
    a,
    b,
    cpuRatio: ratio,
  } = await paired(15, runyardRun(file), () => processTimes(process.execPath, ["-e", "0"]));
  await runFlow(yaml); // warm-up
  const inProcess = await medianOf(15, () => timed(() => runFlow(yaml)));
  return {
    name: "runyard run, one trivial step vs node -e 0",
    measured: cpuAndWall(a),
    inProcess: `${inProcess.toFixed(1)} ms`,
    baseline: cpuAndWall(b),
    ratio,
    target: "<= 1.5",
    note: runyardRunCpuNote,
  };
}

/**
 * 200 steps `true` (each run as `bash -c true`, as the line is a shell builtin) through
 * `runyard run` against a shell starting `bash -c true` 200 times: both whole processes.
 */
export async function stepOverhead(): Promise<BenchRow> {
  const steps = Array.from(
    { length: 200 },
    (_, i) => `  - name: s${i}\n    action: cmd.run\n    args:\n      cmd: "true"\n`,
  );
  const yaml = `name: bench\nsteps:\n${steps.join("")}`;
  const file = benchFile("steps.yaml", yaml);
  const loop = "i=0; while [ $i -lt 200 ]; do bash -c true; i=$((i+1)); done";
  const { a, b, cpuRatio: ratio } = await paired(5, runyardRun(file), () => processTimes("sh", ["-c", loop]));
  await runFlow(yaml); // warm-up
  const inProcess = await medianOf(5, () => timed(() => runFlow(yaml)));
  return {
    name: "runyard run, 200 trivial steps vs 200 x bash -c true",
    measured: cpuAndWall(a),
    inProcess: `${inProcess.toFixed(0)} ms`,
    baseline: cpuAndWall(b),
    ratio,
    target: "<= 1.5",
    note: runyardRunCpuNote,
  };
}

/**
 * 200 independent `sleep 0.05` steps as a graph with `max_parallel: 8` against the same steps in
 * file order, both through `runyard run` as whole processes, taken in turns: how much a graph
 * gains where steps wait rather than compute. 8x is the limit (eight at a time); the ratio is
 * the sequence's wall time over the graph's.
 */
export async function graphParallelGain(): Promise<BenchRow> {
  const step = (i: number, depends: string) =>
    `  - name: s${i}\n${depends}    action: cmd.run\n    args:\n      cmd: sleep 0.05\n`;
  const graph = benchFile(
    "graph.yaml",
    `name: graph\nmax_parallel: 8\nsteps:\n${Array.from({ length: 200 }, (_, i) => step(i, "    depends: []\n")).join("")}`,
  );
  const sequence = benchFile(
    "sequence.yaml",
    `name: sequence\nsteps:\n${Array.from({ length: 200 }, (_, i) => step(i, "")).join("")}`,
  );
  const { a, b, wallRatio } = await paired(3, runyardRun(graph), runyardRun(sequence));
  return {
    name: "runyard run, 200 x sleep 0.05 as a graph (max_parallel 8) vs in sequence",
    measured: `${a.wallMs.toFixed(0)} ms wall`,
    baseline: `${b.wallMs.toFixed(0)} ms wall`,
    ratio: 1 / wallRatio,
    target: ">= 6",
  };
}

/** The producer of the 100 MB rows: 100-byte lines, no shell builtin in the hot path. */
export const produce100MB = "head -c 104857600 /dev/zero | tr '\\0' 'x' | fold -w 100";

/**
 * One step printing 100 MB through `runyard run` (every line printed, prefixed by its host, to
 * /dev/null) against `sh -c` of the same pipeline to /dev/null: throughput ratio of whole
 * processes, taken in turns. Beside the baseline, the same pipeline into `sed` prefixing every
 * line, taken in the same turns: what one more process reading the output and prefixing its
 * lines costs on this machine, in C and without Node's start.
 */
export async function outputThroughput(): Promise<BenchRow> {
  const yaml = `name: bench\nsteps:\n  - name: big\n    action: shell.run\n    args:\n      script: |\n        ${produce100MB}\n`;
  const file = benchFile("big.yaml", yaml);
  const throughSed: ProcessTimes[] = [];
  const {
    a,
    b,
    wallRatio: ratio,
  } = await paired(5, runyardRun(file, false), async () => {
    throughSed.push(await processTimes("sh", ["-c", `${produce100MB} | sed 's/^/local | /'`]));
    return processTimes("sh", ["-c", produce100MB]);
  });
  const sedMs = median(throughSed.map((times) => times.wallMs));
  const inProcess = await medianOf(3, () => timed(() => runFlow(yaml)));
  const mbps = (ms: number): string => `${(100 / (ms / 1000)).toFixed(0)} MB/s`;
  const both = (times: ProcessTimes): string => `${mbps(times.wallMs)} (${times.cpuMs.toFixed(0)} ms CPU)`;
  return {
    name: "runyard run, one step printing 100 MB vs sh > /dev/null",
    measured: both(a),
    inProcess: mbps(inProcess),
    baseline: `${both(b)}; through sed: ${mbps(sedMs)} (${(b.wallMs / sedMs).toFixed(2)})`,
    ratio: 1 / ratio,
    target: ">= 0.8",
    note: runyardRunThroughputNote,
  };
}

async function medianOf(runs: number, fn: () => Promise<number>): Promise<number> {
  const values: number[] = [];
  for (let i = 0; i < runs; i++) values.push(await fn());
  return median(values);
}
