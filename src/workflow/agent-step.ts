/**
 * `action: agent.run` steps, through `runyard agent run`'s pipeline (the entry point's `AgentStepRunner`).
 * With `output_schema` the final answer is validated JSON (a mismatch gets one more turn of the session,
 * the fault shown) and its declared fields become the step's exports.
 */
import { errorInfo, toErrorInfo } from "../core/errors.js";
import type { ErrorInfo, EventInput, StepStatus } from "../core/events.js";
import { settingFamilyOf } from "../core/setting-names.js";
import { answerExports, checkAnswer, retryPrompt, schemaInstruction } from "./agent-output.js";
import type { HostContext } from "./engine.js";
import type { AgentStepSpec, Step } from "./model.js";
import { settingExportsError } from "./outside-values.js";
import { maxAgentPromptChars } from "./parse-agent.js";
import { finishStep, type HostOutcome } from "./step-run.js";
import { fillVariables } from "./templates.js";

/** One turn an agent step asks for. */
export interface AgentTurnRequest {
  runId: string;
  step: string;
  host: string;
  spec: AgentStepSpec;
  /** The prompt of this turn, `${VAR}` replaced. */
  prompt: string;
  /** The turn's number, from 1; a retry continues the first turn's session. */
  turn: number;
  sessionId?: string;
  timeoutMs?: number;
}

/** How the turn ended. */
export interface AgentTurnResult {
  status: "success" | "failed" | "canceled" | "timeout";
  error?: ErrorInfo;
  finalText?: string;
  sessionId?: string;
}

/** Where a run's agent steps run their turns: a local agent pipeline, or a runner through a server. */
export interface AgentStepRunner {
  turn(
    request: AgentTurnRequest,
    io: { signal: AbortSignal; emit: (event: EventInput) => void },
  ): Promise<AgentTurnResult>;
}

/** How much of a non-matching answer the step's error shows. */
const excerptChars = 400;
/** How many of an answer's undeclared fields its notice names, and how much of each name. */
const shownFields = 10;
const shownNameChars = 60;
const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * The warning for an answer's undeclared fields: dropped, not an error (JSON Schema allows extra fields),
 * and one named as a setting called out, since an answer says BASH_ENV only when something steered it to.
 */
function undeclaredNotice(step: string, host: string, fields: string[]): EventInput {
  // A field's name is any JSON string: one that is no variable name is shown quoted, escapes and all.
  const shown = fields
    .slice(0, shownFields)
    .map((name) => (variableName.test(name) ? name : JSON.stringify(name)).slice(0, shownNameChars));
  const more = fields.length > shown.length ? ` and ${fields.length - shown.length} more` : "";
  const settings = shown.filter((name) => settingFamilyOf(name));
  const why =
    settings.length > 0
      ? `; ${settings.join(", ")} ${settings.length > 1 ? "are names" : "is a name"} programs read as a setting, which an answer never sets`
      : "";
  return {
    type: "notice",
    level: "warn",
    step,
    host,
    message: `the agent's answer has field${fields.length > 1 ? "s" : ""} ${shown.join(", ")}${more} that output_schema does not declare under properties: not exported${why}`,
  };
}

export async function runAgentStep(
  step: Step,
  spec: AgentStepSpec,
  host: string,
  ctx: HostContext,
): Promise<HostOutcome> {
  const began = Date.now();
  ctx.emit({ type: "step.started", step: step.name, host, attempt: 1 });
  const runner = ctx.options.agents;
  let error: ErrorInfo | undefined;
  let status: StepStatus = "failed";
  let exports: Record<string, string> = {};
  let turns = 0;
  if (!runner) {
    error = errorInfo(
      "AGENT_STEP_UNAVAILABLE",
      `step "${step.name}" runs agent ${spec.agent}, and nothing here runs agents`,
    );
  } else {
    const base = fillVariables(spec.prompt, ctx.vars);
    const say = (line: string) =>
      ctx.emit({ type: "step.output", step: step.name, host, stream: "stdout", data: `${line}\n` });
    const turn = async (prompt: string, sessionId?: string): Promise<AgentTurnResult> => {
      turns += 1;
      try {
        return await runner.turn(
          {
            runId: ctx.options.runId,
            step: step.name,
            host,
            spec,
            prompt,
            turn: turns,
            ...(sessionId ? { sessionId } : {}),
            ...(step.timeoutSeconds ? { timeoutMs: Math.ceil(step.timeoutSeconds * 1000) } : {}),
          },
          { signal: ctx.signal, emit: ctx.emit },
        );
      } catch (thrown) {
        return { status: "failed", error: toErrorInfo(thrown) };
      }
    };
    const schema = spec.outputSchema;
    // A variable may make a short prompt huge: checked again once they are replaced.
    let result: AgentTurnResult =
      base.length > maxAgentPromptChars
        ? {
            status: "failed",
            error: errorInfo(
              "INVALID_INPUT",
              `the prompt of step "${step.name}" is ${base.length} characters once its variables are replaced, more than the limit of ${maxAgentPromptChars}`,
              "Pass large material to the agent as a file in its repo or folder (repo:, cwd:), not through a variable in the prompt.",
            ),
          }
        : await turn(schema ? `${base}\n${schemaInstruction(schema)}` : base);
    if (result.status === "success" && schema) {
      let check = checkAnswer(schema, result.finalText);
      if (!check.ok) {
        say(`the answer did not match output_schema (${check.error}): asking the agent once more`);
        result = await turn(retryPrompt(schema, check.error), result.sessionId);
        if (result.status === "success") check = checkAnswer(schema, result.finalText);
      }
      if (result.status === "success") {
        if (check.ok) {
          const answer = answerExports(schema, check.value);
          if (answer.undeclared.length > 0) ctx.emit(undeclaredNotice(step.name, host, answer.undeclared));
          const refused = settingExportsError(
            "EXPORT_NAME_REFUSED",
            step.name,
            answer.settings,
            "the agent's answer",
          );
          if (refused) result = { ...result, status: "failed", error: refused };
          else exports = answer.exports;
        } else {
          result = {
            ...result,
            status: "failed",
            error: errorInfo(
              "AGENT_OUTPUT_INVALID",
              `the agent's answer did not match output_schema after ${turns} turns: ${check.error}; the answer began: ${JSON.stringify((result.finalText ?? "").slice(0, excerptChars))}`,
            ),
          };
        }
      }
    }
    status = ctx.signal.aborted ? "canceled" : result.status;
    if (status !== "success")
      error = result.error ?? errorInfo("STEP_FAILED", `agent ${spec.agent} ${status}`);
  }
  const duration = Math.max(0, Date.now() - began);
  return finishStep(
    ctx.emit,
    step.name,
    host,
    {
      status,
      attempts: Math.max(1, turns),
      duration_ms: duration,
      ...(status !== "success" && error ? { error } : {}),
    },
    exports,
  );
}
