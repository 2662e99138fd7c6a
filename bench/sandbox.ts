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
  const [withSandbox, without] = await alternating(
    5,
    () => runFlow(yaml, sandboxed),
    () => runFlow(yaml, plain),
  );
  plain.close();
  sandboxed.close();
  const extraPerStep = (withSandbox - without) / STEPS;
  return {
    name: `extra time per step in the sandbox (${STEPS} steps, fork-server)`,
    measured: `${extraPerStep.toFixed(2)} ms (${(withSandbox / STEPS).toFixed(2)} vs ${(without / STEPS).toFixed(2)} ms a step)`,
    baseline: `${BUDGET_MS} ms`,
    ratio: extraPerStep / BUDGET_MS,
    target: "<= 1",
  };
}
