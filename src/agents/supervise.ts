import type { ErrorInfo } from "../core/events.js";
import type { ProcessLauncher } from "../exec/types.js";
import { agentError } from "./cli-agent.js";
import { costFor } from "./prices.js";
import type { AgentAdapter, AgentInvocation, AgentOutput, AgentTurnEnd, RunnerEnv } from "./types.js";

/** What the runner allows one turn. */
export interface TurnLimits {
  /** The whole turn, start to exit. */
  timeoutMs: number;
  /** The longest the agent may stay silent (no output, no sign of life). */
  stallMs: number;
  /** Stop once the turn has used more than this. */
  budget?: { tokens?: number; usd?: number };
  /**
   * Stop once the turn has cost more than `usd`: what was left of a tenant's or user's spend
   * budget when it started, named by `budget`, which starts again at `resets_at`.
   */
  spendLimit?: { usd: number; budget: string; resets_at: string };
}

/** The usage of a turn, summed over its `usage` outputs. */
export interface UsageTotals {
  inputTokens: number;
  outputTokens: number;
  /** Undefined when a part of the usage had neither a reported cost nor a known price. */
  costUsd?: number;
  /** The model of the last usage that named one. */
  model?: string;
}

/** How a turn ended, with the supervisor's verdict laid over the adapter's. */
export interface AgentTurnResult extends Omit<AgentTurnEnd, "status"> {
  /** "timeout" when the runner stopped the turn at its time limit. */
  status: AgentTurnEnd["status"] | "timeout";
  totals: UsageTotals;
  /** The CLI's last session id, for a follow-up turn. */
  sessionId?: string;
  /** The text of the agent's last assistant message: its answer. */
  lastMessage?: string;
}

type Verdict = { status: "canceled" | "failed" | "timeout"; error: ErrorInfo };

/**
 * Runs one turn under the runner's own watch: no CLI is trusted to time out, notice a stalled stream
 * (Claude Code waits forever on a quiet one) or keep to a budget. The adapter's own signal aborts
 * (stopping its process tree) on cancel, at the time limit, after `stallMs` without a sign of life,
 * or past the budget; the first reason wins over what the adapter reports after (a killed CLI looks
 * like a crash).
 */
export async function superviseTurn(
  adapter: AgentAdapter,
  invocation: AgentInvocation,
  bin: string,
  limits: TurnLimits,
  io: {
    emit(output: AgentOutput): void;
    launcher: ProcessLauncher;
    signal: AbortSignal;
    env?: RunnerEnv;
  },
): Promise<AgentTurnResult> {
  const stop = new AbortController();
  let verdict: Verdict | undefined;
  const abortWith = (status: Verdict["status"], error: ErrorInfo) => {
    if (verdict) return;
    verdict = { status, error };
    stop.abort();
  };

  const onCancel = () => abortWith("canceled", agentError("CANCELED", "the agent run was canceled"));
  if (io.signal.aborted) onCancel();
  else io.signal.addEventListener("abort", onCancel, { once: true });

  const timeout = setTimeout(
    () =>
      abortWith("timeout", agentError("TIMEOUT", `the agent ran longer than ${seconds(limits.timeoutMs)}`)),
    limits.timeoutMs,
  );
  let lastSign = performance.now();
  const stall = setTimeout(() => {
    const silentMs = performance.now() - lastSign;
    abortWith(
      "failed",
      agentError(
        "AGENT_STALLED",
        `the agent was silent for ${seconds(silentMs)} (its stall limit is ${seconds(limits.stallMs)})`,
      ),
    );
  }, limits.stallMs);
  // refresh() re-arms the same timer: cheaper than a new one on every chunk of output.
  const alive = () => {
    lastSign = performance.now();
    stall.refresh();
  };

  const totals: UsageTotals = { inputTokens: 0, outputTokens: 0, costUsd: 0 };
  let sessionId: string | undefined;
  let lastMessage: string | undefined;
  let unpricedSaid = false;
  const emit = (output: AgentOutput) => {
    // A retry or reconnect is shown, but a CLI that does nothing else is stalled.
    if (output.type !== "notice") alive();
    if (output.type === "usage") {
      addUsage(totals, output);
      const dollars = limits.budget?.usd ?? limits.spendLimit?.usd;
      if (dollars !== undefined && totals.costUsd === undefined && !unpricedSaid) {
        // Said once, not guessed: the token budget still holds, the dollar one cannot.
        unpricedSaid = true;
        const which =
          limits.budget?.usd !== undefined
            ? `the budget of $${limits.budget.usd}`
            : limits.spendLimit?.budget;
        io.emit({
          type: "message",
          role: "system",
          text: `the cost of model ${output.model ?? "(unnamed)"} is unknown (the CLI reports none and runyard has no list price for it): ${which} cannot be enforced; use a token budget`,
        });
      }
      const over = overBudget(totals, limits.budget) ?? overSpendLimit(totals, limits.spendLimit);
      if (over) abortWith("failed", agentError("BUDGET_EXCEEDED", over));
    } else if (output.type === "session") {
      sessionId = output.sessionId;
    } else if (output.type === "message" && output.role === "assistant") {
      lastMessage = output.text;
    }
    io.emit(output);
  };

  let end: AgentTurnEnd;
  try {
    end = await adapter.run(invocation, bin, {
      emit,
      alive,
      signal: stop.signal,
      launcher: io.launcher,
      ...(io.env ? { env: io.env } : {}),
    });
  } finally {
    clearTimeout(timeout);
    clearTimeout(stall);
    io.signal.removeEventListener("abort", onCancel);
  }
  const decided: Verdict | undefined = verdict;
  return {
    ...end,
    ...(decided ? { status: decided.status, error: decided.error } : {}),
    totals,
    ...(sessionId === undefined ? {} : { sessionId }),
    ...(lastMessage === undefined ? {} : { lastMessage }),
  };
}

function addUsage(totals: UsageTotals, usage: Extract<AgentOutput, { type: "usage" }>): void {
  totals.inputTokens += usage.inputTokens;
  totals.outputTokens += usage.outputTokens;
  if (usage.model) totals.model = usage.model;
  const cost =
    usage.costUsd ??
    (usage.inputTokens === 0 && usage.outputTokens === 0
      ? 0
      : usage.model
        ? costFor(usage.model, usage.inputTokens, usage.outputTokens)
        : undefined);
  // One unpriced part makes the sum unknown: a partial cost would read as the whole.
  if (cost === undefined || totals.costUsd === undefined) delete totals.costUsd;
  else totals.costUsd += cost;
}

/** Why the totals are over the budget, or undefined while they are within it. */
function overBudget(totals: UsageTotals, budget: TurnLimits["budget"]): string | undefined {
  if (!budget) return undefined;
  const tokens = totals.inputTokens + totals.outputTokens;
  if (budget.tokens !== undefined && tokens > budget.tokens) {
    return `the agent used ${tokens} tokens, over its budget of ${budget.tokens}`;
  }
  if (budget.usd !== undefined && totals.costUsd !== undefined && totals.costUsd > budget.usd) {
    return `the agent used $${totals.costUsd.toFixed(4)}, over its budget of $${budget.usd}`;
  }
  return undefined;
}

/** Why the turn's cost took a spend budget above the task past its limit, or undefined. */
function overSpendLimit(totals: UsageTotals, limit: TurnLimits["spendLimit"]): string | undefined {
  if (!limit || totals.costUsd === undefined || totals.costUsd <= limit.usd) return undefined;
  return `the turn's spend of $${totals.costUsd.toFixed(4)} took ${limit.budget} past its limit ($${limit.usd.toFixed(4)} was left for the turn when it started); it starts again at ${limit.resets_at}`;
}

function seconds(ms: number): string {
  const s = ms / 1000;
  return `${Number.isInteger(s) ? s : s.toFixed(1)} s`;
}
