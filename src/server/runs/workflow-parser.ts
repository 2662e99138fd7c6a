/**
 * Parsing a workflow of up to `max_workflow_bytes` takes the YAML library hundreds of
 * milliseconds of CPU; done on the server's event loop, every other request (`/health`, SSE,
 * runners' heartbeats) would wait for it. Submitted and validated workflows are parsed on
 * threads of their own instead, within a time budget; the workflow that comes back is plain data.
 */
import { Worker } from "node:worker_threads";
import { RunyardError } from "../../core/errors.js";
import { type Diagnostic, type Workflow, workflowProblemsError } from "../../workflow/model.js";
import { parseWorkflow } from "../../workflow/parse.js";
import type { WorkflowLimits } from "../../workflow/yaml-limits.js";
import { threadCpuMs } from "./thread-cpu.js";

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
/** What a parsing thread is started with. */
export interface ParseThreadData {
  /** The thread's nice value on Linux (the lane of large workflows yields the CPU to the rest). */
  nice?: number;
}

/** What the thread says once its modules are loaded: a request's budget starts after it. */
export interface ParseReady {
  ready: true;
  /** The thread's id on Linux: its CPU time is what the budget counts. */
  tid?: number;
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

/** On the caller's thread: for tests and tools that parse little. */
export const parseOnThisThread: WorkflowParser = async (text, file, limits) =>
  parseWorkflow(text, file, limits);

/** The most a workflow may weigh to be parsed on the lane of small ones (see `parseOnWorkerThread`). */
export const smallLaneMaxBytes = 64 * 1024;
/**
 * How long reading one workflow may take on its thread: far more than any workflow within the
 * size limits needs (a 1 MB one takes well under a second), so only input built to be costly
 * passes it. Its thread is then ended, the request refused, and the requests behind it go on.
 * On Linux the budget is the thread's CPU time, so a busy machine, where the large lane's low
 * priority leaves it waiting, stops nothing; the clock still ends a request at
 * `wallBudgetFactor` times the budget.
 */
export const defaultParseBudgetMs = 10_000;
const wallBudgetFactor = 6;

/**
 * Parsing threads, started on first use and again after one dies, in two lanes: workflows of up
 * to `smallLaneMaxBytes` on one thread, larger ones on another. A member sending costly large
 * workflows then delays only other large ones, never a tenant's everyday submit; the large lane's
 * thread runs at a lower priority (nice 10, on Linux), so it yields the CPU too. Each lane
 * serves its requests in order, each within `budgetMs` of its start. `close` ends both (the
 * server's close does). No workflow is parsed on the caller's thread, however small: 8 KB of
 * YAML written to be slow (thousands of unknown keys, brackets nested thousands deep) takes tens
 * of milliseconds, which every other request would wait for; the thread's round trip costs less
 * than a millisecond.
 */
export function parseOnWorkerThread(
  budgetMs = defaultParseBudgetMs,
): WorkflowParser & { close: () => Promise<void> } {
  const small = new ParseLane(budgetMs, {});
  const large = new ParseLane(budgetMs, { nice: 10 });
  const parse = (text: string, file: string, limits: WorkflowLimits): Promise<ParsedWorkflow> =>
    (text.length <= smallLaneMaxBytes ? small : large).parse(text, file, limits);
  return Object.assign(parse, {
    close: async () => {
      await Promise.all([small.close(), large.close()]);
    },
  });
}

interface Waiting {
  request: Omit<ParseRequest, "id">;
  resolve: (parsed: ParsedWorkflow) => void;
  reject: (error: Error) => void;
}

/** One parsing thread and its queue: requests are answered in order, each within the budget. */
class ParseLane {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Waiting>();
  /** Ends the thread when the request at the head of the queue has taken longer than the budget. */
  private budgetTimer: NodeJS.Timeout | undefined;
  /** Whether the thread has loaded: its start-up is not counted against a request's budget. */
  private online = false;
  /** The thread's id, when its CPU time can be read. */
  private tid: number | undefined;
  /** When the head request's budget started: the clock's and the thread's CPU time's. */
  private headStart = { wallMs: 0, cpuMs: undefined as number | undefined };

  constructor(
    private readonly budgetMs: number,
    private readonly threadData: ParseThreadData,
  ) {}

  parse(text: string, file: string, limits: WorkflowLimits): Promise<ParsedWorkflow> {
    return new Promise((resolve, reject) => {
      this.send({ request: { text, file, limits }, resolve, reject });
    });
  }

  async close(): Promise<void> {
    const thread = this.worker;
    this.worker = undefined;
    clearTimeout(this.budgetTimer);
    await thread?.terminate();
  }

  private send(waiting: Waiting): void {
    this.worker ??= this.start();
    const id = this.nextId++;
    this.pending.set(id, waiting);
    this.worker.postMessage({ id, ...waiting.request } satisfies ParseRequest);
    if (this.pending.size === 1) this.startBudget();
  }

  /** The thread works on the oldest pending request now: it has the budget from here. */
  private startBudget(): void {
    clearTimeout(this.budgetTimer);
    if (!this.online) return;
    const head = this.pending.keys().next();
    if (head.done) return;
    this.headStart = { wallMs: performance.now(), cpuMs: this.tid && threadCpuMs(this.tid) };
    this.armBudget(head.value, this.budgetMs);
  }

  private armBudget(id: number, inMs: number): void {
    this.budgetTimer = setTimeout(() => this.checkBudget(id), inMs);
    this.budgetTimer.unref();
  }

  /** The head request's time is up by the clock: stopped if its CPU time is too, or unknown. */
  private checkBudget(id: number): void {
    const wallLeft = this.budgetMs * wallBudgetFactor - (performance.now() - this.headStart.wallMs);
    const cpuNow = this.tid && threadCpuMs(this.tid);
    const { cpuMs } = this.headStart;
    const cpuLeft = cpuMs !== undefined && cpuNow !== undefined ? this.budgetMs - (cpuNow - cpuMs) : 0;
    if (cpuLeft <= 10 || wallLeft <= 0) this.overBudget(id);
    else this.armBudget(id, Math.max(50, Math.min(cpuLeft, wallLeft)));
  }

  /** Refuses the request that took too long, ends its thread, and sends the others to a new one. */
  private overBudget(id: number): void {
    const costly = this.pending.get(id);
    if (!costly) return;
    const rest = [...this.pending].filter(([other]) => other !== id).map(([, waiting]) => waiting);
    this.pending.clear();
    const thread = this.worker;
    this.worker = undefined;
    void thread?.terminate();
    costly.reject(
      unreadable(
        `reading it took longer than ${this.budgetMs / 1000} s, so it was stopped (a workflow within the size limits reads in well under a second)`,
      ),
    );
    for (const waiting of rest) this.send(waiting);
  }

  private start(): Worker {
    this.online = false;
    this.tid = undefined;
    // A memory cap of its own: input that makes the YAML library run away ends this thread with
    // an error for that request, not the server.
    const thread = new Worker(new URL("./workflow-parse-thread.js", import.meta.url), {
      resourceLimits: { maxOldGenerationSizeMb: 512 },
      workerData: this.threadData,
    });
    thread.on("message", (answer: ParseAnswer | ParseReady) => {
      if ("ready" in answer) {
        if (this.worker !== thread) return;
        this.online = true;
        this.tid = answer.tid;
        this.startBudget();
        return;
      }
      const waiting = this.pending.get(answer.id);
      this.pending.delete(answer.id);
      this.startBudget();
      if (!waiting) return;
      if ("failed" in answer) waiting.reject(unreadable(answer.failed));
      else
        waiting.resolve({
          ...(answer.workflow ? { workflow: answer.workflow } : {}),
          diagnostics: answer.diagnostics,
        });
    });
    // The thread died (out of memory on input that made the YAML library run away): the request
    // it was reading is refused, and those behind it go to a new thread.
    const lost = (why: string) => {
      if (this.worker !== thread) return;
      this.worker = undefined;
      clearTimeout(this.budgetTimer);
      const [head, ...rest] = this.pending.values();
      this.pending.clear();
      head?.reject(unreadable(why));
      for (const waiting of rest) this.send(waiting);
    };
    thread.on("error", (error) => lost(error.message));
    thread.on("exit", (code) => lost(`the parsing thread exited with code ${code}`));
    return thread;
  }
}

/** A workflow the parser could not get through: refused as input, never answered as a 500. */
function unreadable(why: string): RunyardError {
  return new RunyardError("WORKFLOW_INVALID", `the workflow could not be read: ${why}`, {
    hint: "Check the YAML with `runyard validate FILE`; a workflow is a small mapping of steps, not data.",
  });
}
