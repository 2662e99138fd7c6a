import type { ErrorInfo, EventInput, StepStatus } from "../../core/events.js";

/** A pipeline step's end, as its `step.finished` says. */
export interface PipelineStepEnd {
  status: StepStatus;
  exitCode?: number | null;
  error?: ErrorInfo;
  memoryPeakBytes?: number;
  cpuMs?: number;
}

/**
 * The steps of an agent task (prepare, agent, test, commit, push) as spine events: each its
 * `step.started` and `step.finished`, on the agent's "host", so a fan-out run shows its agents
 * side by side like a workflow's hosts.
 */
export class PipelineSteps {
  constructor(
    private readonly host: string,
    private readonly emit: (event: EventInput) => void,
  ) {}

  /** Runs `work` as the step `name`; a thrown error ends the step failed and is rethrown. */
  async run<T>(
    name: string,
    work: (say: (line: string) => void) => Promise<{ value: T; end: PipelineStepEnd }>,
  ): Promise<T> {
    const started = Date.now();
    this.emit({ type: "step.started", step: name, host: this.host, attempt: 1 });
    const say = (line: string) =>
      this.emit({ type: "step.output", step: name, host: this.host, stream: "stdout", data: `${line}\n` });
    try {
      const { value, end } = await work(say);
      this.finish(name, started, end);
      return value;
    } catch (error) {
      this.finish(name, started, { status: "failed", error: errorOf(error) });
      throw error;
    }
  }

  /** A step that did not run (an earlier one failed, or it has nothing to do). */
  skipped(name: string, reason: string): void {
    this.emit({
      type: "step.finished",
      step: name,
      host: this.host,
      status: "skipped",
      exit_code: null,
      attempts: 0,
      duration_ms: 0,
      reason,
    });
  }

  private finish(name: string, started: number, end: PipelineStepEnd): void {
    this.emit({
      type: "step.finished",
      step: name,
      host: this.host,
      status: end.status,
      exit_code: end.exitCode ?? (end.status === "success" ? 0 : null),
      attempts: 1,
      duration_ms: Date.now() - started,
      ...(end.memoryPeakBytes !== undefined ? { memory_peak_bytes: end.memoryPeakBytes } : {}),
      ...(end.cpuMs !== undefined ? { cpu_ms: end.cpuMs } : {}),
      ...(end.error ? { error: end.error } : {}),
    });
  }
}

/** A thrown value as the error a step or result carries. */
export function errorOf(error: unknown): ErrorInfo {
  if (error && typeof error === "object" && "code" in error && "message" in error) {
    const { code, message, hint } = error as { code: unknown; message: unknown; hint?: unknown };
    if (typeof code === "string" && typeof message === "string") {
      return { code, message, ...(typeof hint === "string" ? { hint } : {}) };
    }
  }
  return { code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}
