import { agentTaskConfinement, type Confinement } from "../core/confinement.js";
/**
 * A workflow's `agent.run` step as the agent pipeline's task and job (the same `agent` job
 * `runyard agent run` makes), and the pipeline's events as the step's: its `agent.*` events as
 * they are, its own steps (prepare, agent, test, commit, push) as lines of the workflow step's
 * output, since the workflow's step names are the run's and must not be mixed with them.
 */
import type { EventInput } from "../core/events.js";
import type { AgentJob, AgentJobResult, AgentTask } from "../core/jobs/agent.js";
import type { AgentTurnRequest, AgentTurnResult } from "./agent-step.js";

/** A turn's limits when the step gives none: as `runyard agent run`'s defaults. */
const defaultTimeoutMs = 300_000;
const defaultStallMs = 120_000;

/** The conversation a step's turns share on its host: a retry continues it. */
export function agentStepKey(request: Pick<AgentTurnRequest, "runId" | "step" | "host">): string {
  return `${request.runId}-${request.step}-${request.host}`.replace(/[^A-Za-z0-9._-]/g, "_").slice(0, 200);
}

export function agentStepTask(
  request: AgentTurnRequest,
  settings: { env: Record<string, string>; confinement: Confinement; secrets?: string[] },
): AgentTask {
  const { spec } = request;
  const key = agentStepKey(request);
  return {
    run_id: request.runId,
    agent: spec.agent,
    prompt: request.prompt,
    title: request.step,
    key,
    ...(spec.model ? { model: spec.model } : {}),
    extra_args: [],
    env: settings.env,
    ...(spec.cwd ? { cwd: spec.cwd } : {}),
    ...agentTaskConfinement.write(settings.confinement),
    ...(spec.repo
      ? {
          repo: {
            url: spec.repo,
            branch: `runyard/${key}`,
            push: spec.push,
            key,
            // The retry turn works on the branch the first one left.
            reuse: request.turn > 1,
          },
        }
      : {}),
    ...(spec.tests ? { tests: { command: spec.tests } } : {}),
    timeout_ms: request.timeoutMs ?? defaultTimeoutMs,
    stall_ms: Math.min(defaultStallMs, request.timeoutMs ?? defaultStallMs),
    ...(spec.budget ? { budget: spec.budget } : {}),
    ...(request.sessionId ? { session_id: request.sessionId } : {}),
    turn: request.turn,
    secrets: settings.secrets ?? [],
    mcp_servers: {},
    copy_files: [],
    mcp_operator: [],
  };
}

export function agentStepJob(request: AgentTurnRequest, task: AgentTask): AgentJob {
  return { job_id: `${agentStepKey(request)}-${request.turn}`, kind: "agent", payload: task };
}

/** The pipeline's event as the workflow step's: agent events kept, pipeline steps as output lines. */
export function agentStepEvent(request: AgentTurnRequest, event: EventInput): EventInput | undefined {
  const { step, host } = request;
  const line = (data: string): EventInput => ({ type: "step.output", step, host, stream: "stdout", data });
  switch (event.type) {
    case "step.started":
      return line(`[${event.step}] started\n`);
    case "step.output":
      return { ...event, step, host, data: event.data.replace(/^(?=.)/gm, `[${event.step}] `) };
    case "step.finished":
      return line(`[${event.step}] ${event.status}${event.error ? `: ${event.error.message}` : ""}\n`);
    case "notice":
      return { ...event, step, host };
    case "vars.exported":
    case "run.started":
    case "run.finished":
      return undefined;
    default:
      return event;
  }
}

export function agentTurnResult(result: AgentJobResult): AgentTurnResult {
  return {
    status: result.status,
    ...(result.error ? { error: result.error } : {}),
    ...(result.final_text !== undefined ? { finalText: result.final_text } : {}),
    ...(result.session_id ? { sessionId: result.session_id } : {}),
  };
}
