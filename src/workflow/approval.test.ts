// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { describe, expect, it } from "vitest";
import type { EventInput, RunEvent } from "../core/events.js";
import type { StepRunner } from "../core/step-attempt.js";
import { type ApprovalAnswer, type ApprovalGate, type ApprovalRequest, approvalMessage } from "./approval.js";
import { runWorkflow } from "./engine.js";
import { parseWorkflow } from "./parse.js";

const text = (gateExtra = "") => `name: release
vars: {VERSION: "1.2"}
steps:
  - name: build
    action: cmd.run
    args: {cmd: echo build}
  - name: approve
    action: approval
    args: {message: "Ship \${VERSION}?", approvers: [ann], timeout_seconds: 60}
${gateExtra}  - name: ship
    action: cmd.run
    args: {cmd: echo ship}
`;

/** Runs every attempt at once, successfully, and records which steps ran. */
function recordingRunner(ran: string[]): StepRunner {
  return {
    runAttempt: async (request) => {
      ran.push(request.step);
      return {
        status: "success",
        exit_code: 0,
        exports: {},
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

/** A gate that answers at once with `answer`, keeping what it was asked. */
function answeringGate(answer: ApprovalAnswer | undefined, asked: ApprovalRequest[]): ApprovalGate {
  return {
    open: async (request) => {
      asked.push(request);
      return { deadline: asked[0]?.deadline ?? request.deadline };
    },
    answer: async () => answer,
  };
}

async function run(yaml: string, approvals?: ApprovalGate, resume?: RunEvent[], signal?: AbortSignal) {
  const { workflow } = parseWorkflow(yaml, "release.yaml");
  const events: EventInput[] = [];
  const ran: string[] = [];
  const outcome = await runWorkflow({
    workflow: workflow!,
    runId: "run_1",
    emit: (event) => events.push(event),
    runnerFor: () => recordingRunner(ran),
    ...(approvals ? { approvals } : {}),
    ...(resume ? { resume } : {}),
    ...(signal ? { signal } : {}),
  });
  return { outcome, events, ran };
}

describe("approval steps", () => {
  it("wait with their message, then go on when approved", async () => {
    const asked: ApprovalRequest[] = [];
    const { outcome, events, ran } = await run(
      text(),
      answeringGate({ decision: "approved", by: "ann", comment: "go" }, asked),
    );
    expect(outcome.status).toBe("success");
    expect(ran).toEqual(["build", "ship"]);
    expect(asked[0]).toMatchObject({ step: "approve", message: "Ship 1.2?", approvers: ["ann"] });
    const types = events.filter((e) => "step" in e && e.step === "approve").map((e) => e.type);
    expect(types).toEqual(["step.started", "step.waiting", "approval.answered", "step.finished"]);
    expect(events.find((e) => e.type === "approval.answered")).toMatchObject({
      decision: "approved",
      by: "ann",
      comment: "go",
      host: "server",
    });
  });

  it("fail the run with APPROVAL_REJECTED when rejected, and run nothing after", async () => {
    const { outcome, ran } = await run(text(), answeringGate({ decision: "rejected", by: "ann" }, []));
    expect(outcome.status).toBe("failed");
    expect(outcome.error).toMatchObject({
      code: "APPROVAL_REJECTED",
      message: 'step "approve" on server: rejected by ann',
    });
    expect(ran).toEqual(["build"]);
  });

  it("fail with APPROVAL_TIMEOUT when nobody answers, unless continue_on_error", async () => {
    const timeout = answeringGate({ decision: "timeout", by: null }, []);
    expect((await run(text(), timeout)).outcome.error?.code).toBe("APPROVAL_TIMEOUT");
    const lenient = await run(text("    continue_on_error: true\n"), timeout);
    expect(lenient.outcome.status).toBe("success");
    expect(lenient.ran).toEqual(["build", "ship"]);
  });

  it("end canceled when the run is canceled while waiting", async () => {
    const cancel = new AbortController();
    const gate: ApprovalGate = {
      open: async (request) => ({ deadline: request.deadline }),
      answer: async (_step, _deadline, signal) => {
        cancel.abort();
        expect(signal.aborted).toBe(true);
        return undefined;
      },
    };
    const { outcome } = await run(text(), gate, undefined, cancel.signal);
    expect(outcome.status).toBe("canceled");
    expect(outcome.steps.find((s) => s.name === "approve")?.status).toBe("canceled");
  });

  it("fail with APPROVAL_NEEDS_SERVER where there is no gate to answer at", async () => {
    const { outcome } = await run(text());
    expect(outcome.error?.code).toBe("APPROVAL_NEEDS_SERVER");
  });

  it("wait again after a restart, to the deadline stored first, without saying step.waiting twice", async () => {
    const first = await run(text(), answeringGate(undefined, []));
    const upToWait = first.events
      .slice(0, first.events.findIndex((e) => e.type === "step.waiting") + 1)
      .map(
        (event, i) => ({ ...event, run_id: "run_1", seq: i + 1, ts: new Date().toISOString() }) as RunEvent,
      );
    const waiting = upToWait.at(-1);
    const asked: ApprovalRequest[] = [];
    const resumed = await run(text(), answeringGate({ decision: "approved", by: "ann" }, asked), upToWait);
    expect(resumed.outcome.status).toBe("success");
    expect(asked[0]?.deadline).toBe(waiting?.type === "step.waiting" ? waiting.deadline : "");
    expect(resumed.events.map((e) => e.type)).not.toContain("step.waiting");
    expect(resumed.ran).toEqual(["ship"]);
  });

  it("fill ${VAR} in the message and leave unknown names as written", () => {
    expect(approvalMessage("Ship ${VERSION} to ${ENV}?", { VERSION: "1.2" })).toBe("Ship 1.2 to ${ENV}?");
  });
});
