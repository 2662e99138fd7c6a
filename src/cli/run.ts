import { RunyardError } from "../core/errors.js";
import { EventSequencer } from "../core/event-sequencer.js";
import type { RunEvent } from "../core/events.js";
import { newRunId } from "../core/ids.js";
import type { RunConfig } from "../core/run-config.js";
import type { StepRunner } from "../core/step-attempt.js";
import { createExecutor } from "../exec/create-executor.js";
import { type ContainerExecutors, LocalStepRunner } from "../exec/local-runner.js";
import type { Executor } from "../exec/types.js";
import { runWorkflow } from "../workflow/engine.js";
import { everyStep, type HostSpec, type Workflow } from "../workflow/model.js";
import { scheduleIgnoredNotice } from "../workflow/schedule.js";
import { secretsNotGiven } from "../workflow/secrets.js";
import { formatUndefinedVariable, undefinedVariables } from "../workflow/undefined-vars.js";
import { finishWhenOutputCloses } from "./closed-output.js";
import type { CliContext } from "./context.js";
import { HumanRenderer } from "./render-human.js";
import { loadWorkflowFile, parseVarFlags, workflowLimitsOf } from "./workflow-file.js";

export interface RunFlags {
  var: string[];
  json?: boolean;
  quiet?: boolean;
  /** false with `--no-rollback`. */
  rollback?: boolean;
}

/** `runyard run FILE`: runs a workflow in this process. Exit 0 success, 1 failed, 130 canceled. */
export async function runCommand(file: string, flags: RunFlags, ctx: CliContext<RunConfig>): Promise<number> {
  const workflow = await loadWorkflowFile(file, workflowLimitsOf(ctx.config));
  refuseApprovals(file, workflow);
  refuseCalls(file, workflow);
  finishWhenOutputCloses();
  const vars = parseVarFlags(flags.var);
  // As a server refuses a run whose secrets it does not hold, a local run refuses one whose
  // secrets are neither variables nor in the environment it was started in.
  const fromEnv = secretsNotGiven(workflow, { ...workflow.vars, ...vars });
  const missing = fromEnv.filter((name) => ctx.env[name] === undefined);
  if (missing.length > 0) {
    throw new RunyardError(
      "SECRET_MISSING",
      `secrets: ${missing.join(", ")} ${missing.length === 1 ? "is" : "are"} not set: neither a variable nor in this shell's environment`,
      {
        hint: `Export ${missing.length === 1 ? "it" : "each"} before the run (export ${missing[0]}=...), or give --var ${missing[0]}=...; a name a step exports goes in that step's expect_vars.`,
      },
    );
  }
  if (!flags.json) {
    if ((workflow.schedules ?? []).length > 0) ctx.stderr.write(`note: ${file}: ${scheduleIgnoredNotice}\n`);
    for (const variable of undefinedVariables(workflow, vars, ctx.env)) {
      ctx.stderr.write(`${formatUndefinedVariable(file, variable)}\n`);
    }
  }
  if (workflow.concurrency) {
    // A group is held by a server's store; one process alone has nothing to take turns with.
    ctx.stderr.write(
      `notice: concurrency group ${JSON.stringify(workflow.concurrency.group)} is ignored by a local run; runs of a group take turns on a server (runyard run FILE --server URL)\n`,
    );
  }
  const runId = newRunId();
  const sequencer = new EventSequencer(runId);
  const render = eventRenderer(flags, ctx);
  const executor = createExecutor({ baseEnv: ctx.env, killGraceMs: ctx.config.killGraceMs });
  const controller = new AbortController();
  const stop = ctx.onInterrupt(() => controller.abort());
  try {
    const runnerFor = await localRunners(workflow, executor, ctx);
    const outcome = await runWorkflow({
      workflow,
      runId,
      vars,
      // Secrets the environment gives are masked as stored ones are on a server.
      secrets: fromEnv.map((name) => ctx.env[name] ?? ""),
      expressionEnv: ctx.env,
      emit: (input) => render(sequencer.next(input)),
      runnerFor,
      signal: controller.signal,
      rollback: flags.rollback !== false,
      ...(everyStep(workflow).some((step) => step.agent)
        ? {
            agents: (await import("./local-agent-steps.js")).localAgentSteps(
              executor,
              ctx.env,
              ctx.config.killGraceMs,
            ),
          }
        : {}),
    });
    return exitCodeFor(outcome.status);
  } finally {
    stop();
    // The run ends when the fork-server has: a shell's `time` then counts it and its steps.
    await executor.close();
  }
}

/** A finished run's exit code: 0 success, 130 canceled, 1 for every other ending. */
export function exitCodeFor(status: string | undefined): number {
  if (status === "success") return 0;
  return status === "canceled" ? 130 : 1;
}

export function eventRenderer(
  flags: { json?: boolean; quiet?: boolean },
  ctx: Pick<CliContext, "stdout" | "color">,
): (event: RunEvent) => void {
  if (flags.json) return (event) => ctx.stdout.write(`${JSON.stringify(event)}\n`);
  const human = new HumanRenderer(ctx.stdout, ctx.color, flags.quiet);
  return (event) => human.render(event);
}

/**
 * The step runners of a local run. Docker (dockerode) and the direct client are loaded only for a
 * workflow with a host that needs them: a plain workflow starts without their modules.
 */
async function localRunners(
  workflow: Workflow,
  executor: Executor,
  ctx: CliContext<RunConfig>,
): Promise<(host: string, spec: HostSpec) => StepRunner> {
  const hosts = Object.entries(workflow.hosts);
  for (const [name, spec] of hosts) {
    if (spec.kind === "runner") {
      throw new RunyardError(
        "INVALID_INPUT",
        `host "${name}" picks runners by group/labels, which needs a server`,
        { hint: "Submit with `runyard run FILE --server URL`, or make the host `{}` to run it here." },
      );
    }
  }
  const needsDocker = hosts.some(([, spec]) => spec.kind === "local" && spec.container);
  const local = new LocalStepRunner(executor, {
    killGraceMs: ctx.config.killGraceMs,
    ...(needsDocker ? { containers: await dockerExecutors() } : {}),
  });
  const direct = hosts.some(([, spec]) => spec.kind === "direct")
    ? (await import("../direct/client.js")).DirectStepRunner
    : undefined;
  return (_host, spec) => {
    if (spec.kind === "direct" && direct) {
      const token = spec.token ?? ctx.config.token;
      return new direct({ address: spec.address, ...(token ? { token } : {}) });
    }
    return local;
  };
}

async function dockerExecutors(): Promise<ContainerExecutors> {
  const [{ createDockerExecutors }, { DockerEngine }] = await Promise.all([
    import("../exec/docker/create-docker-executors.js"),
    import("../exec/docker/docker-engine.js"),
  ]);
  return createDockerExecutors({ engine: new DockerEngine() });
}

/**
 * A run in this process has nobody to answer an approval step (no API, no other user): it is
 * refused before anything runs, not left to fail halfway, with its steps run up to the gate.
 */
function refuseApprovals(file: string, workflow: Workflow): void {
  const gates = everyStep(workflow).filter((step) => step.action === "approval");
  if (gates.length === 0) return;
  const where = gates
    .map((step) => `${file}:${step.pos.line}:${step.pos.col}: step "${step.name}"`)
    .join("\n");
  throw new RunyardError(
    "APPROVAL_NEEDS_SERVER",
    `${gates.length === 1 ? "an approval step" : "approval steps"} cannot run without a server: approvers answer through its API\n${where}`,
  );
}

/**
 * A run in this process has no saved workflows to call: they live on a server. Refused before
 * anything runs, each call step named at its line and column.
 */
function refuseCalls(file: string, workflow: Workflow): void {
  const calls = everyStep(workflow).filter((step) => step.call);
  if (calls.length === 0) return;
  const where = calls
    .map(
      (step) => `${file}:${step.pos.line}:${step.pos.col}: step "${step.name}" calls ${step.call?.workflow}`,
    )
    .join("\n");
  throw new RunyardError(
    "CALL_NEEDS_SERVER",
    `${calls.length === 1 ? "a workflow.call step" : "workflow.call steps"} cannot run without a server: saved workflows live on one\n${where}`,
  );
}
