import { randomUUID } from "node:crypto";
import { setTimeout as delay } from "node:timers/promises";
import { attemptEndedEarly } from "../core/attempt-ended-early.js";
import { deadline } from "../core/deadline.js";
import { type ErrorCode, errorInfo, RunyardError } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import type {
  StepAttemptRequest,
  StepAttemptResult,
  StepOutputSink,
  StepRunner,
} from "../core/step-attempt.js";
import { ATTEMPT_KEY_HEADER, CancelAnswer, ErrorAnswer, TaskAnswer } from "./api.js";

export interface DirectStepRunnerOptions {
  /** The agent-server's URL, as in `inventory.hosts.NAME.address` (`http://127.0.0.1:7072`). */
  address: string;
  /** The agent-server's `--token`; sent as `Authorization: Bearer`, never shown. */
  token?: string;
  /** How long one `/status` long-poll may wait for output (10 s). */
  pollWaitMs?: number;
  /** How long network errors are retried, with backoff, before the attempt fails (10 s). */
  retryForMs?: number;
  /** Makes the HTTP calls; `fetch` unless given (the server gives one that checks destinations). */
  transport?: DirectTransport;
  /**
   * For a destination a member chose: a failure shows only DIRECT_HOST_FAILED (with the HTTP status
   * at most), never the remote's words, no sooner than `failureFloorMs` after the start, so neither
   * message nor time tells a closed port from an open one. `report` gets the full story for the log.
   */
  sealed?: { failureFloorMs: number; report: (detail: string) => void };
}

/** One HTTP call to an agent-server; rejects on network errors as `fetch` does. */
export type DirectTransport = (call: {
  method: Method;
  url: string;
  headers: Record<string, string>;
  body?: string;
  signal: AbortSignal;
}) => Promise<{ status: number; text: string }>;

/** How long a sealed attempt's failure is held back at least: past the whole retry window. */
export const sealedFailureFloorMs = 12_000;

/** How much longer than the server may take to answer a request is waited for before it counts as lost. */
const ANSWER_GRACE_MS = 30_000;
const FIRST_RETRY_MS = 200;
const LONGEST_RETRY_MS = 2_000;

/** A step attempt ended on the client's side: the agent-server could not be used to the end. */
class AttemptEnded {
  constructor(
    readonly result: StepAttemptResult,
    /** The agent-server's HTTP status that ended the attempt, when an answer did. */
    readonly httpStatus?: number,
  ) {}
}

type Answer = { status: number; body: unknown };
type Method = "GET" | "POST";

interface CallOptions {
  body?: unknown;
  headers?: Record<string, string>;
  /** Waited for at most this long (then retried), besides the retry window. */
  timeoutMs?: number;
  /** Named in the message when contact is lost while the task runs. */
  lostTask?: string;
}

/**
 * Runs step attempts on a `runyard agent-server`: POST /run, then long-polls of /status from a byte
 * offset, so each piece of output reaches `onOutput` once and in order. Each `/run`'s fresh attempt
 * key means a resend after a lost answer, or a cancel before it, never runs the step twice. Failures
 * to reach the server are results (HOST_UNREACHABLE, UNAUTHORIZED), never rejections.
 */
export class DirectStepRunner implements StepRunner {
  private readonly address: string;
  private readonly pollWaitMs: number;
  private readonly retryForMs: number;
  private readonly transport: DirectTransport;

  constructor(private readonly options: DirectStepRunnerOptions) {
    this.address = options.address.replace(/\/+$/, "");
    this.transport = options.transport ?? fetchTransport;
    this.pollWaitMs = options.pollWaitMs ?? 10_000;
    this.retryForMs = options.retryForMs ?? 10_000;
  }

  async runAttempt(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal },
  ): Promise<StepAttemptResult> {
    const startedAt = performance.now();
    try {
      return await this.follow(request, io);
    } catch (error) {
      if (!(error instanceof AttemptEnded)) throw error;
      const sealed = this.options.sealed;
      if (!sealed) return { ...error.result, duration_ms: Math.round(performance.now() - startedAt) };
      sealed.report(error.result.error?.message ?? "the attempt ended");
      const result = this.sealedResult(error);
      // Timers may fire a little early: wait until the floor has really passed.
      for (
        let wait = startedAt + sealed.failureFloorMs - performance.now();
        wait > 0 && !io.signal.aborted;
        wait = startedAt + sealed.failureFloorMs - performance.now()
      ) {
        await delay(Math.ceil(wait), undefined, { signal: io.signal }).catch(() => {});
      }
      return { ...result, duration_ms: Math.round(performance.now() - startedAt) };
    }
  }

  /** The end of a sealed attempt: runyard's own refusal as it is, anything else as one typed error. */
  private sealedResult(ended: AttemptEnded): StepAttemptResult {
    if (ended.result.error?.code === "DESTINATION_NOT_ALLOWED") return ended.result;
    const message =
      ended.httpStatus !== undefined && ended.httpStatus !== 200 && ended.httpStatus !== 202
        ? `the agent-server answered HTTP ${ended.httpStatus}`
        : "could not use the agent-server: no usable answer";
    return attemptEndedEarly("failed", errorInfo("DIRECT_HOST_FAILED", message));
  }

  private async follow(
    request: StepAttemptRequest,
    io: { onOutput: StepOutputSink; signal: AbortSignal },
  ): Promise<StepAttemptResult> {
    const key = randomUUID();
    let answer = await this.call("POST", "/run", {
      body: request,
      headers: { [ATTEMPT_KEY_HEADER]: key },
      abortOn: io.signal,
    });
    let canceled = false;
    if (answer === "aborted") {
      canceled = true;
      answer = await this.cancel(`key=${encodeURIComponent(key)}`);
    }
    let task = this.taskAnswer(answer, "/run");
    for (;;) {
      if (task.dropped_bytes) {
        io.onOutput(
          "stderr",
          `[runyard: ${task.dropped_bytes} bytes of output were dropped by the agent-server]\n`,
        );
      }
      for (const entry of task.output) io.onOutput(entry.stream, entry.data);
      if (task.state === "done" && !task.more) {
        if (task.result) return task.result;
        throw this.ended(
          "INTERNAL",
          `agent-server ${this.address} ended task ${task.task_id} without a result`,
        );
      }

      if (!canceled && io.signal.aborted) {
        canceled = true;
        await this.cancel(`task_id=${encodeURIComponent(task.task_id)}`);
      }
      const query = `task_id=${encodeURIComponent(task.task_id)}&offset=${task.offset}&wait_ms=${this.pollWaitMs}`;
      const polled = await this.call("GET", `/status?${query}`, {
        abortOn: canceled ? undefined : io.signal,
        timeoutMs: this.pollWaitMs + ANSWER_GRACE_MS,
        lostTask: task.task_id,
      });
      if (polled === "aborted") {
        task = { ...task, output: [], dropped_bytes: undefined };
        continue;
      }
      if (polled.status === 404) {
        throw this.ended(
          "RUNNER_LOST",
          `agent-server ${this.address} no longer knows task ${task.task_id}; it may have restarted`,
          "Check the agent-server's log; a restarted agent-server forgets its tasks and stops their steps.",
          404,
        );
      }
      task = this.taskAnswer(polled, "/status");
    }
  }

  /** Asks the server to stop the attempt; its end still comes through /status. */
  private async cancel(query: string): Promise<Answer> {
    const answer = await this.call("POST", `/cancel?${query}`, {});
    if (answer.status === 200) {
      const parsed = CancelAnswer.safeParse(answer.body);
      if (parsed.success) return { status: 202, body: { task_id: parsed.data.task_id, state: "running" } };
    }
    return answer;
  }

  /** A /run or /status answer, or the attempt's end when the server refused. */
  private taskAnswer(answer: Answer, route: string): TaskAnswer {
    if (answer.status === 200 || answer.status === 202) {
      const parsed = TaskAnswer.safeParse(answer.body);
      if (parsed.success) return parsed.data;
      throw this.ended(
        "INTERNAL",
        `agent-server ${this.address} sent an answer to ${route} that runyard cannot read`,
      );
    }
    if (answer.status === 401) {
      const [message, hint] =
        this.options.token === undefined
          ? [
              `agent-server ${this.address} wants a token, and the host has none`,
              "Give the host `token:` with the same value as the agent-server's --token.",
            ]
          : [
              `agent-server ${this.address} refused the token`,
              "Use the same --token on both sides: the host's `token:` must equal the agent-server's --token.",
            ];
      throw this.ended("UNAUTHORIZED", message, hint, 401);
    }
    const refusal = ErrorAnswer.safeParse(answer.body);
    const error: ErrorInfo = refusal.success
      ? {
          ...refusal.data.error,
          message: `agent-server ${this.address} refused ${route}: ${refusal.data.error.message}`,
        }
      : errorInfo("INTERNAL", `agent-server ${this.address} answered ${route} with HTTP ${answer.status}`);
    throw new AttemptEnded(attemptEndedEarly("failed", error), answer.status);
  }

  /**
   * One HTTP call; network errors and 502-504 are retried with backoff for `retryForMs`, then end
   * the attempt HOST_UNREACHABLE. Resolves "aborted" when `abortOn` aborts first.
   */
  private call(
    method: Method,
    path: string,
    options: CallOptions & { abortOn: AbortSignal | undefined },
  ): Promise<Answer | "aborted">;
  private call(method: Method, path: string, options: CallOptions): Promise<Answer>;
  private async call(
    method: Method,
    path: string,
    options: CallOptions & { abortOn?: AbortSignal },
  ): Promise<Answer | "aborted"> {
    const headers: Record<string, string> = { ...options.headers };
    if (this.options.token !== undefined) headers.authorization = `Bearer ${this.options.token}`;
    if (options.body !== undefined) headers["content-type"] = "application/json";
    const giveUpAt = performance.now() + this.retryForMs;
    // Sealed, reaching the server at all ends within the retry window, so the failure floor
    // covers every way it can fail; following a task that runs may take as long as it needs.
    const clampToWindow = this.options.sealed !== undefined && options.lostTask === undefined;
    let wait = FIRST_RETRY_MS;
    let lastStatus: number | undefined;
    for (;;) {
      if (options.abortOn?.aborted) return "aborted";
      const timeoutMs = options.timeoutMs ?? ANSWER_GRACE_MS;
      const limit = deadline(
        clampToWindow ? Math.max(1, Math.ceil(Math.min(timeoutMs, giveUpAt - performance.now()))) : timeoutMs,
        options.abortOn,
      );
      let problem: string;
      try {
        const response = await this.transport({
          method,
          url: `${this.address}${path}`,
          headers,
          ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
          signal: limit.signal,
        });
        if (![502, 503, 504].includes(response.status))
          return { status: response.status, body: parseJson(response.text) };
        problem = `HTTP ${response.status}`;
        lastStatus = response.status;
      } catch (error) {
        if (options.abortOn?.aborted) return "aborted";
        if (error instanceof RunyardError)
          throw new AttemptEnded(attemptEndedEarly("failed", error.toInfo()));
        problem = networkProblem(error);
        lastStatus = undefined;
      } finally {
        limit.clear();
      }
      if (performance.now() + wait > giveUpAt) {
        const message =
          options.lostTask === undefined
            ? `cannot reach agent-server ${this.address}: ${problem}`
            : `lost contact with agent-server ${this.address}: ${problem} (task ${options.lostTask} may still run there)`;
        throw this.ended("HOST_UNREACHABLE", message, undefined, lastStatus);
      }
      await delay(wait, undefined, { signal: options.abortOn }).catch(() => {});
      wait = Math.min(wait * 2, LONGEST_RETRY_MS);
    }
  }

  private ended(code: ErrorCode, message: string, hint?: string, httpStatus?: number): AttemptEnded {
    return new AttemptEnded(attemptEndedEarly("failed", errorInfo(code, message, hint)), httpStatus);
  }
}

/** `fetch`, as a transport: what the CLI and runners use to call agent-servers. */
const fetchTransport: DirectTransport = async (call) => {
  const response = await fetch(call.url, {
    method: call.method,
    headers: call.headers,
    ...(call.body === undefined ? {} : { body: call.body }),
    signal: call.signal,
  });
  return { status: response.status, text: await response.text() };
};

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** `ECONNREFUSED`, `ENOTFOUND`, `no answer within 40s`: what a user can look up. */
function networkProblem(error: unknown): string {
  if (error instanceof Error && error.name === "TimeoutError") return "no answer in time";
  const cause = (error as { cause?: { code?: unknown; message?: unknown } }).cause;
  if (typeof cause?.code === "string") return cause.code;
  if (typeof cause?.message === "string") return cause.message;
  return error instanceof Error ? error.message : String(error);
}
