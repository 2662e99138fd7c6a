import { z } from "zod";
import { attemptEndedEarly } from "../attempt-ended-early.js";
import type { ErrorInfo, EventInput } from "../events.js";
import { assertExhaustive } from "../exhaustive.js";
import { AgentJob, AgentJobResult, agentEndedEarly, agentJobMaySend } from "./agent.js";
import { BotJob, BotJobResult, botEndedEarly, botJobMaySend } from "./bot.js";
import { StepJob, StepJobResult, stepJobMaySend } from "./step.js";

/**
 * Every kind of job a runner can be given (docs/architecture.md, "The life of a run"), one schema file each. Adding
 * a kind: a file beside `step.ts`, one member in each union below, one case in each switch, and
 * a handler in `src/runner/handlers/`. The compiler points at every place that needs it.
 */
export const Job = z.discriminatedUnion("kind", [StepJob, AgentJob, BotJob]);
export type Job = z.infer<typeof Job>;
export type JobKind = Job["kind"];
/** Every job kind, for runners to say which they handle (RunnerInfo.kinds). */
export const jobKinds = ["step", "agent", "bot"] as const satisfies readonly JobKind[];
// A kind added to the union but not to the list fails here.
const everyKindListed: Exclude<JobKind, (typeof jobKinds)[number]> extends never ? true : never = true;
void everyKindListed;

export const JobResult = z.discriminatedUnion("kind", [StepJobResult, AgentJobResult, BotJobResult]);
export type JobResult = z.infer<typeof JobResult>;
export type JobResultOf<K extends JobKind> = Extract<JobResult, { kind: K }>;
export type JobOf<K extends JobKind> = Extract<Job, { kind: K }>;

/** Whether a runner holding `job` may report `event` into the job's run. */
export function jobMaySend(job: Job, event: EventInput): boolean {
  switch (job.kind) {
    case "step":
      return stepJobMaySend(job, event);
    case "agent":
      return agentJobMaySend(job, event);
    case "bot":
      return botJobMaySend(job, event);
    default:
      return assertExhaustive(job, "job kind");
  }
}

/** What a log line about a job names besides its id: the run, and where in it the job is. */
export function jobLogFields(job: Job): Record<string, string | number> {
  switch (job.kind) {
    case "step": {
      const { run_id, step, host, attempt } = job.payload;
      return { runId: run_id, step, host, attempt };
    }
    case "agent": {
      const { run_id, agent, turn } = job.payload;
      return { runId: run_id, agent, turn };
    }
    case "bot": {
      const { run_id, bot_id, name } = job.payload;
      return { runId: run_id, botId: bot_id, bot: name };
    }
    default:
      return assertExhaustive(job, "job kind");
  }
}

/** Where a job runs in its run: the host of its steps (a workflow host, or the agent). */
export function jobHost(job: Job): string {
  switch (job.kind) {
    case "step":
      return job.payload.host;
    case "agent":
      return job.payload.agent;
    case "bot":
      return job.payload.name;
    default:
      return assertExhaustive(job, "job kind");
  }
}

/** The result of a job that ended without its runner's word: lost with it, or canceled first. */
export function jobEndedEarly(job: Job, status: "failed" | "canceled", error: ErrorInfo): JobResult {
  switch (job.kind) {
    case "step":
      return { kind: "step", ...attemptEndedEarly(status, error) };
    case "agent":
      return agentEndedEarly(job.payload.agent, status, error);
    case "bot":
      return botEndedEarly(job.payload.bot_id, status, error);
    default:
      return assertExhaustive(job, "job kind");
  }
}
