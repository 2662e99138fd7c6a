import { RunyardError } from "../../core/errors.js";
import type { ErrorInfo } from "../../core/events.js";
import type { AgentJob, AgentJobResult } from "../../core/jobs/agent.js";
import { type RunnerRecord, servesTenant } from "../../store/index.js";
import type { AgentTurnRequest } from "../../workflow/agent-step.js";
import type { JobQueue } from "../job-queue.js";
import type { HostPlacement } from "../job-queue-options.js";
import { type SpendBudgets, spendLimitOf, type TurnReservation, turnEstimate } from "../spend-budgets.js";
import type { ActiveRun } from "./run-kind.js";

/**
 * Why no runner registered here could take an `agent.run` step's turn, or undefined when one
 * could (online or not: a runner that restarts comes back under its id). The host's runners are
 * those of its group and labels that serve the run's tenant; the refusal names the agent the
 * step asks for and the agents those runners have, so the step fails at once instead of
 * waiting in the queue for a runner that will never come.
 */
export async function agentStepRunnerRefusal(
  runners: { list(): Promise<RunnerRecord[]> },
  tenantId: string | null,
  request: Pick<AgentTurnRequest, "host" | "step" | "spec">,
  host: { group?: string; labels: readonly string[] },
): Promise<ErrorInfo | undefined> {
  const agent = request.spec.agent;
  const mode = request.spec.repo ? "mode:issue" : "mode:chat";
  const ofHost = (await runners.list()).filter(
    (runner) =>
      servesTenant(runner, tenantId) &&
      (host.group === undefined || runner.group === host.group) &&
      host.labels.every((label) => runner.labels.includes(label)),
  );
  const withAgent = ofHost.filter((runner) => runner.labels.includes(`agent:${agent}`));
  if (withAgent.some((runner) => runner.labels.includes(mode))) return undefined;
  const where = [
    host.group !== undefined ? `in group ${host.group}` : "",
    ...host.labels.map((label) => `with ${label}`),
  ]
    .filter(Boolean)
    .join(" ");
  const hostRunners = `runner${where ? ` ${where}` : ""}`;
  if (ofHost.length === 0) {
    return {
      code: "AGENT_NOT_INSTALLED",
      message: `step "${request.step}" runs agent ${agent} on host "${request.host}", and no ${hostRunners} that may take this run is registered`,
      hint: `Start a runner for host "${request.host}" with ${agent} installed (\`runyard agents install ${agent}\`), or change the host's group and labels; \`runyard runners\` lists the runners.`,
    };
  }
  if (withAgent.length > 0) {
    return {
      code: "AGENT_NOT_INSTALLED",
      message: `step "${request.step}" runs agent ${agent} ${request.spec.repo ? "on a repo" : "without a repo"}, and no ${hostRunners} that has it takes ${mode.slice(5)} tasks (${withAgent.map((runner) => runner.id).join(", ")} do not)`,
      hint: `Set the runner's mode to ${mode.slice(5)} or all, or ${request.spec.repo ? "drop repo:" : "give the step a repo:"}.`,
    };
  }
  const has = ofHost
    .map((runner) => {
      const agents = runner.labels
        .filter((label) => label.startsWith("agent:"))
        .map((label) => label.slice(6));
      return `${runner.id}: ${agents.length > 0 ? agents.join(", ") : "none"}`;
    })
    .join("; ");
  return {
    code: "AGENT_NOT_INSTALLED",
    message: `step "${request.step}" runs agent ${agent} on host "${request.host}", and no ${hostRunners} has it (their agents: ${has})`,
    hint: `Install it on a runner of that host with \`runyard agents install ${agent}\` (a runner advertises the agents it finds when it starts), or give the step an agent those runners have.`,
  };
}

/**
 * One agent turn as a job on the queue, its run's budgets counted again as it starts (the run
 * may have waited while other turns spent) and its share of what is left held until it ends.
 * Answers the job's result, or the BUDGET_EXCEEDED error that kept it from starting.
 */
export async function runAgentTurn(
  queue: Pick<JobQueue, "runJob">,
  budgets: Pick<SpendBudgets, "reserveTurn"> | undefined,
  run: ActiveRun,
  job: AgentJob,
  placement: HostPlacement,
  signal: AbortSignal,
): Promise<AgentJobResult | { refused: ErrorInfo }> {
  const { record } = run;
  let spend: TurnReservation | undefined;
  try {
    spend = await budgets?.reserveTurn(
      { tenantId: record.tenant_id, createdBy: record.created_by, createdByUser: record.created_by_user },
      { runId: record.id, ...turnEstimate(job.payload) },
    );
  } catch (error) {
    if (error instanceof RunyardError && error.code === "BUDGET_EXCEEDED") return { refused: error.toInfo() };
    throw error;
  }
  if (spend) job.payload.spend_limit = spendLimitOf(spend);
  try {
    const result = await queue.runJob(
      job,
      { runId: record.id, sink: run.sink, tenantId: record.tenant_id },
      placement,
      signal,
    );
    if (result.kind !== "agent") throw new Error(`an agent job ended with a ${result.kind} result`);
    return result;
  } finally {
    await spend?.release();
  }
}
