/**
 * A queue of requests to a worker thread of its own, so costly work (a large JSON text, a workflow)
 * never holds the event loop. Started on first use, it answers in order; a request it dies on (out of
 * memory) or overruns its budget on is refused, and the requests behind go to a new thread.
 */
import { setPriority } from "node:os";
import { parentPort, Worker, workerData } from "node:worker_threads";
import { currentThreadId, threadCpuMs } from "./thread-cpu.js";

export interface ThreadQueueOptions {
  /** The thread's module: its body calls `answerRequests`. */
  file: URL;
  /** The thread as a refusal names it when it dies ("the JSON thread"). */
  name: string;
  /** The error a request is refused with, given why: the thread failed on it, died or took too long. */
  refusal: (why: string) => Error;
  /**
   * How long one request may take once the thread has loaded, and why it is refused past that. On Linux
   * it is the thread's CPU time (thread-cpu.ts), so a busy machine starving a low-priority thread stops
   * nothing; the clock still ends a request at `wallBudgetFactor` times the budget, and not before
   * `wallFloorMs` when the CPU time is read (a short budget set by an operator is the thread's CPU,
   * not the machine's load: a 250 ms budget's 1.5 s clock refused a 10 KB workflow on a loaded host).
   */
  budget?: Budget;
  /** The thread's nice value on Linux (a lane that yields the CPU to the rest). */
  nice?: number;
  /** Whether an idle thread lets the process stop. */
  unref?: boolean;
}

interface Budget {
  ms: number;
  tooLong: string;
}

const wallBudgetFactor = 6;
/** The least time the clock gives a request whose thread's CPU time is read. */
const wallFloorMs = 30_000;

/** What the thread says once its modules are loaded: a request's budget starts after it. */
interface ThreadReady {
  ready: true;
  /** The thread's id on Linux: its CPU time is what the budget counts. */
  tid?: number;
}

type Answer<Result> = { id: number } & (Result | { failed: string });

interface Waiting<Request, Result> {
  request: Request;
  resolve: (result: Result) => void;
  reject: (error: Error) => void;
}

/** One worker thread and its queue: requests are answered in order, each within the budget. */
export class ThreadQueue<Request extends object, Result extends object> {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Waiting<Request, Result>>();
  /** Ends the thread when the request at the head of the queue has taken longer than the budget. */
  private budgetTimer: NodeJS.Timeout | undefined;
  /** Whether the thread has loaded: its start-up is not counted against a request's budget. */
  private online = false;
  /** The thread's id, when its CPU time can be read. */
  private tid: number | undefined;
  /** When the head request's budget started: the clock's and the thread's CPU time's. */
  private headStart = { wallMs: 0, cpuMs: undefined as number | undefined };

  constructor(private readonly options: ThreadQueueOptions) {}

  run(request: Request): Promise<Result> {
    return new Promise((resolve, reject) => this.send({ request, resolve, reject }));
  }

  async close(): Promise<void> {
    const thread = this.worker;
    this.worker = undefined;
    clearTimeout(this.budgetTimer);
    await thread?.terminate();
  }

  private send(waiting: Waiting<Request, Result>): void {
    this.worker ??= this.start();
    const id = this.nextId++;
    this.pending.set(id, waiting);
    this.worker.postMessage({ id, ...waiting.request });
    if (this.pending.size === 1) this.startBudget();
  }

  /** The thread works on the oldest pending request now: it has the budget from here. */
  private startBudget(): void {
    clearTimeout(this.budgetTimer);
    const { budget } = this.options;
    if (!budget || !this.online || this.pending.size === 0) return;
    this.headStart = { wallMs: performance.now(), cpuMs: this.tid && threadCpuMs(this.tid) };
    this.armBudget(budget, budget.ms);
  }

  private armBudget(budget: Budget, inMs: number): void {
    this.budgetTimer = setTimeout(() => this.checkBudget(budget), inMs);
    this.budgetTimer.unref();
  }

  /** The head request's time is up by the clock: stopped if its CPU time is too, or unknown. */
  private checkBudget({ ms, tooLong }: Budget): void {
    const cpuNow = this.tid && threadCpuMs(this.tid);
    const { cpuMs } = this.headStart;
    const cpuUsed = cpuMs !== undefined && cpuNow !== undefined ? cpuNow - cpuMs : undefined;
    const wallMs =
      cpuUsed === undefined ? ms * wallBudgetFactor : Math.max(ms * wallBudgetFactor, wallFloorMs);
    const wallLeft = wallMs - (performance.now() - this.headStart.wallMs);
    const cpuLeft = cpuUsed === undefined ? 0 : ms - cpuUsed;
    if (cpuLeft <= 10 || wallLeft <= 0) this.restart(tooLong);
    else this.armBudget({ ms, tooLong }, Math.max(50, Math.min(cpuLeft, wallLeft)));
  }

  /** Refuses the request the thread is on, ends the thread, and sends the others to a new one. */
  private restart(why: string): void {
    const thread = this.worker;
    this.worker = undefined;
    clearTimeout(this.budgetTimer);
    void thread?.terminate();
    const [head, ...rest] = this.pending.values();
    this.pending.clear();
    head?.reject(this.options.refusal(why));
    for (const waiting of rest) this.send(waiting);
  }

  private start(): Worker {
    this.online = false;
    this.tid = undefined;
    // A memory cap of its own: runaway input ends this thread with an error for that request, not the server.
    const thread = new Worker(this.options.file, {
      resourceLimits: { maxOldGenerationSizeMb: 512 },
      workerData: { nice: this.options.nice },
    });
    thread.on("message", (message: Answer<Result> | ThreadReady) => {
      if ("ready" in message) {
        if (this.worker !== thread) return;
        this.online = true;
        this.tid = message.tid;
        this.startBudget();
        return;
      }
      const { id, ...answer } = message;
      const waiting = this.pending.get(id);
      this.pending.delete(id);
      this.startBudget();
      if (!waiting) return;
      if ("failed" in answer) waiting.reject(this.options.refusal(answer.failed));
      else waiting.resolve(answer as Result);
    });
    const lost = (why: string) => {
      if (this.worker === thread) this.restart(why);
    };
    thread.on("error", (error) => lost(error.message));
    thread.on("exit", (code) => lost(`${this.options.name} exited with code ${code}`));
    if (this.options.unref) thread.unref();
    return thread;
  }
}

/** A `ThreadQueue` thread's body: `ThreadReady` once loaded, then `work`'s answer (or failure) to each. */
export function answerRequests<Request>(work: (request: Request) => object): void {
  // On Linux nice is per thread (setpriority of 0 is the calling thread); elsewhere it is per process.
  const { nice } = (workerData ?? {}) as { nice?: number };
  if (nice !== undefined && process.platform === "linux") {
    try {
      setPriority(0, nice);
    } catch {
      // Not allowed here (a sandbox that forbids it): the thread runs at the process's priority.
    }
  }
  parentPort?.on("message", ({ id, ...request }: Request & { id: number }) => {
    let answer: object;
    try {
      answer = { id, ...work(request as Request) };
    } catch (error) {
      answer = { id, failed: error instanceof Error ? error.message : String(error) };
    }
    parentPort?.postMessage(answer);
  });
  // Loaded: a request's time counts from here, in this thread's CPU time where /proc says it.
  const tid = currentThreadId();
  parentPort?.postMessage({ ready: true, ...(tid ? { tid } : {}) } satisfies ThreadReady);
}
