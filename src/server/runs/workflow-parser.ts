/**
 * Parsing a workflow of up to `max_workflow_bytes` takes the YAML library hundreds of ms of CPU, which
 * every other request (`/health`, SSE, heartbeats) would wait for on the event loop. So submitted and
 * validated workflows are parsed on threads of their own within a time budget, coming back as plain data.
 */
import { RunyardError } from "../../core/errors.js";
import { type Diagnostic, type Workflow, workflowProblemsError } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import { ThreadQueue } from "../thread-queue.js";

export interface ParsedWorkflow {
  workflow?: Workflow;
  diagnostics: Diagnostic[];
}

/** Parses a workflow's text as `parseWorkflow` does, without holding the caller's thread. */
export type WorkflowParser = ((
  text: string,
  file: string,
  limits: WorkflowLimits,
) => Promise<ParsedWorkflow>) & {
  /** Ends the thread, if there is one: a parsing thread keeps the process alive. */
  close?: () => Promise<void>;
};

export interface ParseRequest {
  text: string;
  file: string;
  limits: WorkflowLimits;
}

/** The workflow `parsing` reads from `text`, or WORKFLOW_INVALID with each problem where it is. */
export async function parsedWorkflow(
  parsing: { parse: WorkflowParser; limits: WorkflowLimits },
  text: string,
  file: string,
): Promise<Workflow> {
  const { workflow, diagnostics } = await parsing.parse(text, file, parsing.limits);
  if (!workflow) throw workflowProblemsError(file, diagnostics);
  return workflow;
}

/** Keeps what was read from a text under `key` as the newest of `kept`; the oldest goes past `max`. */
export function keepNewest<T>(kept: Map<string, T>, key: string, value: T, max: number): void {
  kept.delete(key);
  kept.set(key, value);
  const oldest = kept.keys().next().value;
  if (kept.size > max && oldest !== undefined) kept.delete(oldest);
}

/** On the caller's thread: for tests and tools that parse little. */
export const parseOnThisThread: WorkflowParser = async (text, file, limits) =>
  parseWorkflow(text, file, limits);

/** The most a workflow may weigh to be parsed on the lane of small ones (see `parseOnWorkerThread`). */
export const smallLaneMaxBytes = 64 * 1024;
/**
 * How long reading one workflow may take on its thread (thread-queue.ts): far more than any within the
 * size limits needs (1 MB takes well under a second), so only input built to be costly passes it.
 */
export const defaultParseBudgetMs = 10_000;

/**
 * Parsing threads in two lanes, up to `smallLaneMaxBytes` and larger, so costly large workflows delay
 * only other large ones, never an everyday submit; the large lane runs at nice 10 (Linux) to yield the
 * CPU too. None is parsed on the caller's thread, however small: 8 KB of YAML written to be slow
 * (thousands of unknown keys, brackets nested thousands deep) takes tens of ms; a round trip, under one.
 */
export function parseOnWorkerThread(
  budgetMs = defaultParseBudgetMs,
): WorkflowParser & { close: () => Promise<void> } {
  const lane = (nice?: number) =>
    new ThreadQueue<ParseRequest, ParsedWorkflow>({
      file: new URL("./workflow-parse-thread.js", import.meta.url),
      name: "the parsing thread",
      refusal: unreadable,
      budget: {
        ms: budgetMs,
        tooLong: `reading it took longer than ${budgetMs / 1000} s, so it was stopped (a workflow within the size limits reads in well under a second)`,
      },
      nice,
    });
  const small = lane();
  const large = lane(10);
  const parse = (text: string, file: string, limits: WorkflowLimits): Promise<ParsedWorkflow> =>
    (text.length <= smallLaneMaxBytes ? small : large).run({ text, file, limits });
  return Object.assign(parse, {
    close: async () => {
      await Promise.all([small.close(), large.close()]);
    },
  });
}

/** A workflow the parser could not get through: refused as input, never answered as a 500. */
function unreadable(why: string): RunyardError {
  return new RunyardError("WORKFLOW_INVALID", `the workflow could not be read: ${why}`, {
    hint: "Check the YAML with `runyard validate FILE`; a workflow is a small mapping of steps, not data.",
  });
}
