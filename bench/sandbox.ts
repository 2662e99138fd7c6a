import { readdirSync, readFileSync } from "node:fs";
import { createExecutor } from "../src/exec/create-executor.js";
import { probeSandbox, Sandbox } from "../src/exec/sandbox.js";
import type { BenchResult } from "./table.js";
import { alternating, runFlow, trivialSteps } from "./workflow.js";

const STEPS = 200;
/** What the sandbox may add to a trivial step (docs/security.md). */
const BUDGET_MS = 5;

/**
 * What the bubblewrap sandbox of a shared runner adds to a step: 200 trivial steps through the
 * fork-server, sandboxed and not, in turns in the same process.
 */
export async function sandboxStepCost(): Promise<BenchResult> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") return { skipped: `sandboxed steps: ${probe.problem}` };
  const env = process.env as Record<string, string>;
  const plain = createExecutor({ baseEnv: env });
  const sandboxed = createExecutor({ baseEnv: env, sandbox: new Sandbox({ bwrap: probe.bwrap, hide: [] }) });
  const { yaml } = trivialSteps(STEPS);
  await runFlow(yaml, sandboxed); // warm-up
  const cpu = { withSandbox: 0, without: 0 };
  const counted = (key: keyof typeof cpu, run: () => Promise<void>) => async () => {
    const before = cpuMs();
    await run();
    cpu[key] += cpuMs() - before;
  };
  const RUNS = 5;
  const [withSandbox, without] = await alternating(
    RUNS,
    counted("withSandbox", () => runFlow(yaml, sandboxed)),
    counted("without", () => runFlow(yaml, plain)),
  );
  plain.close();
  sandboxed.close();
  const perStep = (total: number) => (total / RUNS / STEPS).toFixed(2);
  const extraPerStep = (withSandbox - without) / STEPS;
  return {
    name: `extra time per step in the sandbox (${STEPS} steps, fork-server)`,
    measured: `${extraPerStep.toFixed(2)} ms (${(withSandbox / STEPS).toFixed(2)} vs ${(without / STEPS).toFixed(2)} ms a step; CPU ${perStep(cpu.withSandbox)} vs ${perStep(cpu.without)} ms)`,
    baseline: `${BUDGET_MS} ms`,
    ratio: extraPerStep / BUDGET_MS,
    target: "<= 1",
  };
}

/**
 * CPU time so far of this process and of its children (the fork-servers) with everything they
 * reaped (the steps, bwrap and its pid 1): the wall time of a loaded machine hides what a
 * sandbox costs, its CPU time does not.
 */
function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  let ticks = 0;
  for (const task of readdirSync("/proc/self/task")) {
    const children = readFileSync(`/proc/self/task/${task}/children`, "utf8").trim();
    for (const pid of children ? children.split(" ") : []) {
      try {
        const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
        // utime, stime, cutime, cstime (fields 14 to 17 of proc(5)), in ticks of 10 ms.
        ticks += Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      } catch {
        // ended meanwhile
      }
    }
  }
  return (user + system) / 1000 + ticks * 10;
}
