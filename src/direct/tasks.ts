import { attemptEndedEarly } from "../core/attempt-ended-early.js";
import { errorInfo } from "../core/errors.js";
import type { RunStatus } from "../core/events.js";
import { newTaskId } from "../core/ids.js";
import { StepAttemptRequest, type StepAttemptResult, type StepRunner } from "../core/step-attempt.js";
import type { OutputEntry } from "./api.js";

/** What an agent-server remembers and for how long. */
export interface DirectTaskTableOptions {
  /** Finished tasks are forgotten this long after they end (1 hour). */
  keepFinishedMs?: number;
  /** At most this many finished tasks are kept, the newest (1000). */
  keepFinishedCount?: number;
  /** Each task keeps the newest this many bytes of its output (8 MiB); older output is dropped. */
  keptOutputBytes?: number;
  now?: () => number;
}

interface Chunk extends OutputEntry {
  /** Offset of the chunk's first byte in the task's whole log. */
  start: number;
  bytes: number;
}

/** One page of a task's output, from an offset on. */
export interface OutputPage {
  output: OutputEntry[];
  /** The offset after the page: where the next read starts. */
  offset: number;
  /** More output follows than fit in the page. */
  more: boolean;
  /** Bytes between the asked offset and the oldest kept byte, which are gone. */
  droppedBytes: number;
}

/**
 * A task's output as one log addressed by UTF-8 byte offsets from its first byte; only the newest
 * bytes are kept, so a step that prints without end cannot fill the agent-server's memory.
 */
export class TaskOutputLog {
  private readonly chunks: Chunk[] = [];
  private head = 0;
  private keptBytes = 0;
  private endOffset = 0;

  constructor(private readonly maxKeptBytes: number) {}

  /** Bytes written so far, dropped ones included: the offset of the next byte. */
  get size(): number {
    return this.endOffset;
  }

  append(stream: OutputEntry["stream"], data: string): void {
    if (data === "") return;
    const bytes = Buffer.byteLength(data);
    this.chunks.push({ stream, data, start: this.endOffset, bytes });
    this.endOffset += bytes;
    this.keptBytes += bytes;
    // The newest chunk always stays, whatever its size.
    while (this.keptBytes > this.maxKeptBytes && this.head < this.chunks.length - 1) {
      this.keptBytes -= this.chunks[this.head]!.bytes;
      this.head += 1;
    }
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks.splice(0, this.head);
      this.head = 0;
    }
  }

  /** About `maxBytes` of output from `offset` (no chunk is split); mid-character, from the next one. */
  read(offset: number, maxBytes: number): OutputPage {
    if (offset > this.endOffset) {
      throw new RangeError(`offset ${offset} is past the end of the output (${this.endOffset} bytes)`);
    }
    const keptStart = this.chunks[this.head]?.start ?? this.endOffset;
    const droppedBytes = Math.max(0, keptStart - offset);
    let position = Math.max(offset, keptStart);
    const output: OutputEntry[] = [];
    let taken = 0;
    for (let index = this.chunkAt(position); index < this.chunks.length; index++) {
      const chunk = this.chunks[index]!;
      if (taken > 0 && taken + chunk.bytes > maxBytes) break;
      let data = chunk.data;
      if (position > chunk.start) {
        const rest = Buffer.from(chunk.data).subarray(position - chunk.start);
        let skip = 0;
        while (skip < rest.length && (rest[skip]! & 0xc0) === 0x80) skip += 1;
        data = rest.subarray(skip).toString("utf8");
      }
      const last = output.at(-1);
      if (data !== "") {
        if (last?.stream === chunk.stream) last.data += data;
        else output.push({ stream: chunk.stream, data });
      }
      taken += chunk.bytes - (position - chunk.start);
      position = chunk.start + chunk.bytes;
    }
    return { output, offset: position, more: position < this.endOffset, droppedBytes };
  }

  /** Index of the kept chunk holding `offset` (the end when none does). */
  private chunkAt(offset: number): number {
    let low = this.head;
    let high = this.chunks.length;
    while (low < high) {
      const middle = (low + high) >>> 1;
      const chunk = this.chunks[middle]!;
      if (chunk.start + chunk.bytes <= offset) low = middle + 1;
      else high = middle;
    }
    return low;
  }
}

/** One step attempt that an agent-server runs. */
export class DirectTask {
  state: "running" | "done" = "running";
  result: StepAttemptResult | undefined;
  finishedAt: number | undefined;
  updatedAt: number;
  readonly done: Promise<StepAttemptResult>;
  private readonly controller = new AbortController();
  private readonly waiters = new Set<() => void>();
  private resolveDone!: (result: StepAttemptResult) => void;

  constructor(
    readonly id: string,
    readonly request: StepAttemptRequest,
    readonly log: TaskOutputLog,
    readonly startedAt: number,
    private readonly now: () => number,
  ) {
    this.updatedAt = startedAt;
    this.done = new Promise((resolve) => {
      this.resolveDone = resolve;
    });
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  get canceling(): boolean {
    return this.controller.signal.aborted && this.state === "running";
  }

  appendOutput(stream: OutputEntry["stream"], data: string): void {
    if (this.state === "done" || data === "") return;
    this.log.append(stream, data);
    this.updatedAt = this.now();
    this.wake();
  }

  finish(result: StepAttemptResult): void {
    if (this.state === "done") return;
    this.state = "done";
    this.result = result;
    this.finishedAt = this.now();
    this.updatedAt = this.finishedAt;
    this.resolveDone(result);
    this.wake();
  }

  /** Asks the attempt to stop; the executor kills its process group. */
  cancel(): void {
    this.controller.abort();
  }

  /** Resolves true when the task ends within `ms`, false otherwise. */
  async settledWithin(ms: number): Promise<boolean> {
    return this.state === "done" || settled(this.done, ms);
  }

  /** Resolves at the first of: output past `offset`, the task done, `ms` passed, `signal` aborted. */
  changedAfter(offset: number, ms: number, signal?: AbortSignal): Promise<void> {
    if (this.state === "done" || this.log.size > offset || ms <= 0 || signal?.aborted) {
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const stop = (): void => {
        clearTimeout(timer);
        this.waiters.delete(stop);
        signal?.removeEventListener("abort", stop);
        resolve();
      };
      const timer = setTimeout(stop, ms);
      this.waiters.add(stop);
      signal?.addEventListener("abort", stop, { once: true });
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/** An agent-server's tasks: running ones, and finished ones kept so a client can fetch their end. */
export class DirectTaskTable {
  private readonly tasks = new Map<string, DirectTask>();
  /** Attempt key -> task id: a `/run` sent again returns the task it started the first time. */
  private readonly keys = new Map<string, string>();
  private readonly keyOf = new Map<string, string>();
  /** Finished task ids, oldest first. */
  private readonly finished: string[] = [];
  private readonly keepFinishedMs: number;
  private readonly keepFinishedCount: number;
  private readonly keptOutputBytes: number;
  private readonly now: () => number;

  constructor(options: DirectTaskTableOptions = {}) {
    this.keepFinishedMs = options.keepFinishedMs ?? 60 * 60 * 1000;
    this.keepFinishedCount = options.keepFinishedCount ?? 1000;
    this.keptOutputBytes = options.keptOutputBytes ?? 8 * 1024 * 1024;
    this.now = options.now ?? Date.now;
  }

  /** Starts `request` on `runner` as a new task, or returns the task started earlier under `key`. */
  start(request: StepAttemptRequest, runner: StepRunner, key?: string): DirectTask {
    this.prune();
    const known = key === undefined ? undefined : this.byKey(key);
    if (known) return known;
    const task = this.add(request, key);
    runner
      .runAttempt(request, {
        onOutput: (stream, data) => task.appendOutput(stream, data),
        signal: task.signal,
      })
      .then(
        (result) => this.settle(task, result),
        (error: unknown) =>
          this.settle(
            task,
            attemptEndedEarly("failed", errorInfo("INTERNAL", `the step runner failed: ${String(error)}`)),
          ),
      );
    return task;
  }

  /** Cancels the task started under `key`; when none was yet, a late `/run` with that key never starts. */
  cancelKey(key: string): DirectTask {
    this.prune();
    const known = this.byKey(key);
    if (known) {
      known.cancel();
      return known;
    }
    // Belongs to no run: `/run-status` never lists it.
    const unsent = { run_id: "", step: "", host: "", attempt: 1, action: "shell.run", script: "", env: {} };
    const task = this.add(StepAttemptRequest.parse(unsent), key);
    task.cancel();
    this.settle(
      task,
      attemptEndedEarly("canceled", errorInfo("CANCELED", "step was canceled before it started")),
    );
    return task;
  }

  get(id: string): DirectTask | undefined {
    this.prune();
    return this.tasks.get(id);
  }

  byKey(key: string): DirectTask | undefined {
    const id = this.keys.get(key);
    return id === undefined ? undefined : this.tasks.get(id);
  }

  forRun(runId: string): DirectTask[] {
    this.prune();
    return [...this.tasks.values()].filter((task) => task.request.run_id === runId);
  }

  running(): DirectTask[] {
    return [...this.tasks.values()].filter((task) => task.state === "running");
  }

  /** Cancels every running task and waits until all have ended. */
  async cancelAll(): Promise<void> {
    const running = this.running();
    for (const task of running) task.cancel();
    await Promise.all(running.map((task) => task.done));
  }

  /** Forgets finished tasks past their keeping time or beyond the count kept. */
  prune(): void {
    const oldestKept = this.now() - this.keepFinishedMs;
    while (this.finished.length > 0) {
      const task = this.tasks.get(this.finished[0]!);
      const expired = task === undefined || (task.finishedAt ?? 0) < oldestKept;
      if (!expired && this.finished.length <= this.keepFinishedCount) break;
      this.forget(this.finished.shift()!);
    }
  }

  private add(request: StepAttemptRequest, key: string | undefined): DirectTask {
    const task = new DirectTask(
      newTaskId(),
      request,
      new TaskOutputLog(this.keptOutputBytes),
      this.now(),
      this.now,
    );
    this.tasks.set(task.id, task);
    if (key !== undefined) {
      this.keys.set(key, task.id);
      this.keyOf.set(task.id, key);
    }
    return task;
  }

  private settle(task: DirectTask, result: StepAttemptResult): void {
    task.finish(result);
    this.finished.push(task.id);
    this.prune();
  }

  private forget(id: string): void {
    this.tasks.delete(id);
    const key = this.keyOf.get(id);
    if (key !== undefined) {
      this.keys.delete(key);
      this.keyOf.delete(id);
    }
  }
}

/** One task of a run, as `/run-status` shows it. */
export interface RunStepView {
  step: string;
  host: string;
  attempt: number;
  task_id: string;
  state: "running" | "done";
  status?: StepAttemptResult["status"];
  exit_code?: number | null;
}

/** `/run-status`: what this agent-server saw of a run (the engine elsewhere knows the rest). */
export interface RunSnapshot {
  run_id: string;
  status: Extract<RunStatus, "running" | "success" | "failed" | "canceled" | "timeout">;
  steps: RunStepView[];
  updated_at: string;
}

/**
 * Sums up a run's tasks, the latest attempt of each step on each host: running while one runs, else
 * the worst ending wins (canceled, timeout, failed). Blind to `continue_on_error`: a failed step fails it.
 */
export function runSnapshot(runId: string, tasks: DirectTask[]): RunSnapshot {
  const ordered = [...tasks].sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  const latest = new Map<string, DirectTask>();
  for (const task of ordered) {
    const where = JSON.stringify([task.request.step, task.request.host]);
    const seen = latest.get(where);
    if (!seen || task.request.attempt >= seen.request.attempt) latest.set(where, task);
  }
  const endings = [...latest.values()].map((task) => task.result?.status);
  const worst = (["canceled", "timeout", "failed"] as const).find((ending) => endings.includes(ending));
  const status: RunSnapshot["status"] = endings.includes(undefined) ? "running" : (worst ?? "success");
  return {
    run_id: runId,
    status,
    steps: ordered.map((task) => ({
      step: task.request.step,
      host: task.request.host,
      attempt: task.request.attempt,
      task_id: task.id,
      state: task.state,
      ...(task.result ? { status: task.result.status, exit_code: task.result.exit_code } : {}),
    })),
    updated_at: new Date(Math.max(...ordered.map((task) => task.updatedAt))).toISOString(),
  };
}

/** True when `work` settles within `ms`. */
export async function settled(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([work.then(() => true), timedOut]);
  } finally {
    clearTimeout(timer);
  }
}
