import { type Confinement, stepConfinement } from "../../core/confinement.js";
import type { EventInput } from "../../core/events.js";
import type { AgentTests } from "../../core/jobs/agent.js";
import type { StepRunner } from "../../core/step-attempt.js";
import { runWorkflow } from "../../workflow/engine.js";
import { formatDiagnostic } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import { testsPlaybook } from "../../workflow/tests-playbook.js";
import { BoundedText } from "./bounded-text.js";

export interface TestsOutcome {
  status: "success" | "failed" | "canceled" | "timeout";
  exitCode: number | null;
  /** Everything the tests printed, masked, for the test-output artifact. */
  output: string;
  message?: string;
}

/**
 * Runs an agent task's tests in its workspace: a command, or a playbook (the playbook format)
 * through the workflow engine. Their steps are reported as `test` (or `test: <playbook step>`) on
 * the agent's host; the output is also kept for the test-output artifact.
 */
export async function runAgentTests(options: {
  tests: AgentTests;
  runId: string;
  agent: string;
  cwd: string;
  timeoutMs: number;
  secrets: string[];
  stepRunner: StepRunner;
  /** The task's: an unconfined task's test containers are not held to a member's rules. */
  confinement: Confinement;
  emit: (event: EventInput) => void;
  signal: AbortSignal;
}): Promise<TestsOutcome> {
  const { tests, agent, cwd } = options;
  const { workflow, diagnostics } = parseWorkflow(testsPlaybook(tests, options.timeoutMs), "tests.yaml");
  if (!workflow) {
    return {
      status: "failed",
      exitCode: null,
      output: "",
      message: `the tests playbook does not parse:\n${diagnostics.map(formatDiagnostic).join("\n")}`,
    };
  }
  const output = new BoundedText(8 * 1024 * 1024);
  let lastExit: number | null = null;
  const outcome = await runWorkflow({
    workflow,
    runId: options.runId,
    vars: {},
    secrets: options.secrets,
    announceStart: false,
    signal: options.signal,
    runnerFor: () => ({
      runAttempt: (request, io) =>
        options.stepRunner.runAttempt(
          {
            ...request,
            cwd: request.cwd ?? cwd,
            ...stepConfinement.write(options.confinement),
          },
          io,
        ),
    }),
    emit: (event) => {
      if (event.type === "run.started" || event.type === "run.finished" || event.type === "run.queued")
        return;
      if (event.type === "step.output") output.push(event.data);
      if (event.type === "step.finished" && event.status !== "skipped") lastExit = event.exit_code;
      if ("step" in event && "host" in event && typeof event.step === "string") {
        const step = tests.playbook ? `test: ${event.step}` : "test";
        options.emit({ ...event, step, host: agent } as EventInput);
        return;
      }
      options.emit(event);
    },
  });
  const status =
    outcome.status === "success" || outcome.status === "canceled" || outcome.status === "timeout"
      ? outcome.status
      : "failed";
  return {
    status,
    exitCode: lastExit,
    output: output.text(),
    ...(outcome.error ? { message: outcome.error.message } : {}),
  };
}
