/**
 * Parsing a workflow of up to `max_workflow_bytes` takes the YAML library hundreds of
 * milliseconds of CPU; done on the server's event loop, every other request (`/health`, SSE,
 * runners' heartbeats) would wait for it. Submitted and validated workflows are parsed on a
 * thread of their own instead; the workflow that comes back is plain data.
 */
import { Worker } from "node:worker_threads";
import { RunyardError } from "../../core/errors.js";
import type { Diagnostic, Workflow } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";

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
  id: number;
  text: string;
  file: string;
  limits: WorkflowLimits;
}

export type ParseAnswer = { id: number } & (ParsedWorkflow | { failed: string });

/** On the caller's thread: for tests and tools that parse little. */
export const parseOnThisThread: WorkflowParser = async (text, file, limits) =>
  parseWorkflow(text, file, limits);

/**
 * The most a workflow parsed on the caller's thread may weigh: parsing this much without aliases
 * takes the YAML library well under a millisecond or two, less than the thread's round trip.
 */
export const parseHereMaxBytes = 8 * 1024;

/**
 * Whether parsing `text` on the caller's thread is cheap whatever it holds: small, and without
 * `&` or `*`, so it can hold no anchor or alias (the expansion that makes small input costly).
 * A workflow with either character (`&&` in a script will do) goes to the thread.
 */
export function cheapToParseHere(text: string): boolean {
  return text.length <= parseHereMaxBytes && !/[&*]/.test(text);
}

/**
 * One parsing thread, started on first use and again after it dies; requests queue on it in
 * order. `close` ends it (the server's close does). A workflow cheap to parse (`cheapToParseHere`)
 * is parsed on the caller's thread instead: it neither waits for the round trip nor queues behind
 * a costly one.
 */
export function parseOnWorkerThread(): WorkflowParser & { close: () => Promise<void> } {
  let worker: Worker | undefined;
  let nextId = 1;
  const pending = new Map<
    number,
    { resolve: (parsed: ParsedWorkflow) => void; reject: (error: Error) => void }
  >();

  const start = (): Worker => {
    // A memory cap of its own: input that makes the YAML library run away ends this thread with
    // an error for that request, not the server.
    const thread = new Worker(new URL("./workflow-parse-thread.js", import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: 512 },
    });
    thread.on("message", (answer: ParseAnswer) => {
      const waiting = pending.get(answer.id);
      pending.delete(answer.id);
      if (!waiting) return;
      if ("failed" in answer) waiting.reject(unreadable(answer.failed));
      else
        waiting.resolve({
          ...(answer.workflow ? { workflow: answer.workflow } : {}),
          diagnostics: answer.diagnostics,
        });
    });
    const lost = (why: string) => {
      if (worker === thread) worker = undefined;
      for (const waiting of pending.values()) waiting.reject(unreadable(why));
      pending.clear();
    };
    thread.on("error", (error) => lost(error.message));
    thread.on("exit", (code) => lost(`the parsing thread exited with code ${code}`));
    return thread;
  };

  const parse = (text: string, file: string, limits: WorkflowLimits): Promise<ParsedWorkflow> =>
    cheapToParseHere(text)
      ? parseHere(text, file, limits)
      : new Promise((resolve, reject) => {
          worker ??= start();
          const id = nextId++;
          pending.set(id, { resolve, reject });
          worker.postMessage({ id, text, file, limits } satisfies ParseRequest);
        });
  /** As the thread answers: what the parser throws is an unreadable workflow, not a 500. */
  const parseHere = async (text: string, file: string, limits: WorkflowLimits): Promise<ParsedWorkflow> => {
    try {
      return parseWorkflow(text, file, limits);
    } catch (error) {
      throw unreadable(error instanceof Error ? error.message : String(error));
    }
  };
  return Object.assign(parse, {
    close: async () => {
      const thread = worker;
      worker = undefined;
      await thread?.terminate();
    },
  });
}

/** A workflow the parser could not get through: refused as input, never answered as a 500. */
function unreadable(why: string): RunyardError {
  return new RunyardError("WORKFLOW_INVALID", `the workflow could not be read: ${why}`, {
    hint: "Check the YAML with `runyard validate FILE`; a workflow is a small mapping of steps, not data.",
  });
}
