// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { describe, expect, it } from "vitest";
import type { EventInput } from "../core/events.js";
import type { StepAttemptResult, StepRunner } from "../core/step-attempt.js";
import type { ApprovalGate } from "./approval.js";
import type { WorkflowCaller } from "./call.js";
import { type EngineOptions, runWorkflow } from "./engine.js";
import { parseWorkflow } from "./parse.js";

/*
 * The one rule for values from outside the workflow's own text, where the engine exports them:
 * whatever a called workflow, an approver's form or a runner hands back, no later step gets a
 * variable under a setting's name. (The workflow's own declarations are refused as it is parsed;
 * these are what reaches the engine past that: a form stored before a name was listed, a
 * runner or agent-server that reports what a step printed.)
 */

/** Runs every attempt at once; `exports` of the step named `exporting`, and records each step's env. */
function recordingRunner(
  seen: Map<string, Record<string, string>>,
  exports: Record<string, string> = {},
): StepRunner {
  return {
    runAttempt: async (request): Promise<StepAttemptResult> => {
      seen.set(request.step, { ...request.env });
      return {
        status: "success",
        exit_code: 0,
        exports: request.step === "build" ? exports : {},
        duration_ms: 1,
        memory_peak_bytes: 0,
        cpu_ms: 0,
        output_files: [],
        secret_exports: [],
        warnings: [],
      };
    },
  };
}

async function run(yaml: string, options: Partial<EngineOptions>, exports?: Record<string, string>) {
  const { workflow, diagnostics } = parseWorkflow(yaml, "wf.yaml");
  expect(diagnostics).toEqual([]);
  const events: EventInput[] = [];
  const seen = new Map<string, Record<string, string>>();
  const outcome = await runWorkflow({
    workflow: workflow!,
    runId: "run_1",
    emit: (event) => events.push(event),
    runnerFor: () => recordingRunner(seen, exports),
    ...options,
  });
  return { outcome, events, seen };
}

const then = `  - name: deploy
    action: cmd.run
    args: {cmd: echo deploy}
`;

describe("values from outside the workflow's text", () => {
  it("a called workflow's output under a setting's name fails the call step, naming it and the step", async () => {
    const caller: WorkflowCaller = {
      call: async (request) => {
        const child = { runId: "run_child", workflow: request.workflow, version: 3 };
        request.started(child);
        return { child, status: "success", outputs: { REPORT: "ok", LD_PRELOAD: "/tmp/x.so" } };
      },
    };
    const { outcome, events, seen } = await run(
      `name: w\nsteps:\n  - name: ship\n    action: workflow.call\n    args: {workflow: deploy}\n${then}`,
      { calls: caller },
    );
    expect(outcome.status).toBe("failed");
    const step = outcome.steps.find((s) => s.name === "ship");
    expect(step?.error?.code).toBe("EXPORT_NAME_REFUSED");
    expect(step?.error?.message).toMatch(
      /^step "ship": the outputs of deploy v3 may not set LD_PRELOAD: LD_PRELOAD is a name programs read as a setting \(the dynamic loader/,
    );
    expect(step?.error?.hint).toContain("MY_LD_PRELOAD");
    expect(events.some((e) => e.type === "vars.exported")).toBe(false);
    expect(seen.has("deploy")).toBe(false);
  });

  it("an approver's input under a setting's name fails the approval step", async () => {
    const gate: ApprovalGate = {
      open: async (request) => ({ deadline: request.deadline }),
      answer: async () => ({ decision: "approved", by: "ann", inputs: { PATH: "/tmp/evil", NOTE: "hi" } }),
    };
    const { outcome, seen } = await run(
      `name: w\nsteps:\n  - name: go\n    action: approval\n    args: {message: Ship?, approvers: [ann]}\n${then}`,
      { approvals: gate },
    );
    const step = outcome.steps.find((s) => s.name === "go");
    expect(step).toMatchObject({ status: "failed", error: { code: "EXPORT_NAME_REFUSED" } });
    expect(step?.error?.message).toContain('step "go": an approver\'s input may not set PATH');
    expect(seen.has("deploy")).toBe(false);
  });

  it("a step's own export under a setting's name is dropped with a warning, whatever runner reported it", async () => {
    const { outcome, events, seen } = await run(
      `name: w\nsteps:\n  - name: build\n    action: cmd.run\n    args: {cmd: echo build}\n${then}`,
      {},
      { BASH_ENV: "$(id >&2)", GIT_SSH_COMMAND: "sh -c id", ARTIFACT: "a.tgz" },
    );
    expect(outcome.status).toBe("success");
    expect(events.find((e) => e.type === "vars.exported")).toMatchObject({ vars: { ARTIFACT: "a.tgz" } });
    const warnings = events
      .filter((e) => e.type === "notice" && e.step === "build")
      .map((e) => (e.type === "notice" ? e.message : ""));
    expect(warnings).toEqual([
      expect.stringMatching(/^export BASH_ENV was refused: BASH_ENV is a name programs read as a setting/),
      expect.stringMatching(
        /^export GIT_SSH_COMMAND was refused: .*in the script of the step that needs it$/,
      ),
    ]);
    expect(seen.get("deploy")).toMatchObject({ ARTIFACT: "a.tgz" });
    expect(seen.get("deploy")).not.toHaveProperty("BASH_ENV");
    expect(seen.get("deploy")).not.toHaveProperty("GIT_SSH_COMMAND");
  });
});
