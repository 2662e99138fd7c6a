import type { ErrorInfo } from "../core/events.js";
import { agentError } from "./cli-agent.js";
import type { AgentErrorCode } from "./types.js";

/** What a failed model call that a CLI would retry means for the run. */
export type RetriedFailure = "AGENT_RATE_LIMIT" | "AGENT_UNAVAILABLE" | "AGENT_AUTH";

/**
 * The run's cap on retries of one model call (`llm_retry_count`), kept by the adapter for a CLI
 * that has no setting for it (Copilot CLI, OpenCode): the adapter reports each failed attempt
 * it reads in the CLI's output and each call that got through; once `retries + 1` attempts of
 * one call have failed in a row, `exceeded` is the error the turn ends with, and `runCliAgent`
 * stops the CLI before its next attempt.
 */
export class RetryCap {
  private failedInARow = 0;
  private verdict: (ErrorInfo & { code: AgentErrorCode }) | undefined;

  constructor(private readonly retries: number) {}

  /**
   * One attempt of a model call failed with `code`; `message` is what the CLI said of it. A
   * refused key (AGENT_AUTH) ends the turn at once: the CLIs call a 401 transient and retry it,
   * but the same key is refused again, and every retry only delays the answer.
   */
  attemptFailed(code: RetriedFailure, message: string): void {
    this.failedInARow += 1;
    if (this.verdict) return;
    if (code === "AGENT_AUTH") {
      this.verdict = agentError(code, `${message} (a refused key is not retried)`);
      return;
    }
    if (this.failedInARow <= this.retries) return;
    const attempts = this.failedInARow === 1 ? "1 attempt" : `${this.failedInARow} attempts`;
    this.verdict = agentError(
      code,
      `${message} (stopped after ${attempts} of one model call: llm_retry_count is ${this.retries})`,
    );
  }

  /** A model call got an answer: the next failure starts a new count. */
  callSucceeded(): void {
    this.failedInARow = 0;
  }

  get exceeded(): (ErrorInfo & { code: AgentErrorCode }) | undefined {
    return this.verdict;
  }
}
