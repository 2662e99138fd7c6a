import type { AgentSummary, EventOf } from "../../core/events.js";
import type { RunRecord } from "../../store/index.js";
import type { RunTraceRoot } from "./run-trace-ids.js";
import { spanIds } from "./span-ids.js";
import type { FinishedSpan } from "./span-writer.js";

type AgentEvent = EventOf<"agent.message" | "agent.tool_call" | "agent.tool_result" | "agent.usage">;

/** One agent's turn in a run, as its events tell it. */
interface Turn {
  start: Date;
  /** The last event's time: a model call began no earlier than the event before its usage. */
  last: Date;
  model?: string;
  events: NonNullable<FinishedSpan["events"]>;
}

/**
 * The OpenTelemetry GenAI conventions' `gen_ai.system` (the provider) of each adapter
 * (src/agents/registry.ts); an agent not listed names itself.
 */
const providers: Record<string, string> = {
  claude_code: "anthropic",
  codex: "openai",
  openai: "openai",
  gemini: "gcp.gemini",
  copilot: "github_copilot",
  opencode: "opencode",
};

/**
 * An agent run's turns and model calls as the GenAI semantic conventions have them: each agent's
 * turn a span, each `agent.usage` (one a model call for the built-in loop; a CLI's as often as its
 * stream reports usage) a `chat` span with the provider, the model, tokens and runyard's cost, each
 * tool call a span event with the tool's name only (its input may hold anything).
 */
export class AgentSpans {
  private readonly turns = new Map<string, Turn>();

  constructor(
    private readonly runId: string,
    private readonly root: RunTraceRoot,
    private readonly record: RunRecord | undefined,
  ) {}

  /** The spans an agent event ends: a model call's on its `agent.usage`. */
  observe(event: AgentEvent): FinishedSpan[] {
    const agent = event.agent ?? this.record?.name ?? "agent";
    const at = new Date(event.ts);
    let turn = this.turns.get(agent);
    if (!turn) {
      turn = { start: at, last: at, events: [] };
      this.turns.set(agent, turn);
    }
    const since = turn.last;
    turn.last = at;
    switch (event.type) {
      case "agent.tool_call":
        turn.events.push({
          name: "gen_ai.tool.call",
          time: at,
          attributes: { "gen_ai.tool.name": event.tool, "gen_ai.tool.call.id": event.call_id },
        });
        return [];
      case "agent.tool_result":
        turn.events.push({
          name: "gen_ai.tool.result",
          time: at,
          attributes: {
            "gen_ai.tool.call.id": event.call_id,
            ...(event.is_error ? { "error.type": "tool_error" } : {}),
          },
        });
        return [];
      case "agent.message":
        return [];
      case "agent.usage": {
        if (event.model) turn.model = event.model;
        const model = event.model ?? turn.model;
        return [
          {
            traceId: this.root.traceId,
            spanId: spanIds.modelCall(this.runId, agent, event.seq),
            parentSpanId: spanIds.agentTurn(this.runId, agent),
            name: model ? `chat ${model}` : "chat",
            kind: "client",
            start: since,
            end: at,
            attributes: {
              "runyard.run.id": this.runId,
              "runyard.agent": agent,
              "gen_ai.operation.name": "chat",
              "gen_ai.system": providers[agent] ?? agent,
              ...(model ? { "gen_ai.request.model": model, "gen_ai.response.model": model } : {}),
              "gen_ai.usage.input_tokens": event.input_tokens,
              "gen_ai.usage.output_tokens": event.output_tokens,
              ...(event.cost_usd !== undefined ? { "runyard.cost_usd": event.cost_usd } : {}),
            },
          },
        ];
      }
    }
  }

  /** Each agent's turn span, at the run's end, with what its summary says. */
  finished(end: EventOf<"run.finished">): FinishedSpan[] {
    const summaries = new Map((end.agents ?? []).map((summary) => [summary.agent, summary]));
    for (const agent of summaries.keys()) {
      if (!this.turns.has(agent))
        this.turns.set(agent, { start: new Date(end.ts), last: new Date(end.ts), events: [] });
    }
    return [...this.turns].map(([agent, turn]) => this.turnSpan(agent, turn, summaries.get(agent), end));
  }

  private turnSpan(
    agent: string,
    turn: Turn,
    summary: AgentSummary | undefined,
    end: EventOf<"run.finished">,
  ): FinishedSpan {
    const finishedAt = new Date(end.ts);
    const model = summary?.model ?? turn.model;
    // The runner's duration, kept within the run: a negative or vast one would make an invalid
    // time or one before 1970, and either fails the OTLP exporter's whole batch.
    const runCreated = this.record ? Date.parse(this.record.created_at) : 0;
    const reported = summary ? finishedAt.getTime() - Math.max(0, summary.duration_ms) : Number.NaN;
    const start = summary
      ? new Date(Math.max(runCreated, Math.min(turn.start.getTime(), reported)))
      : turn.start;
    return {
      traceId: this.root.traceId,
      spanId: spanIds.agentTurn(this.runId, agent),
      parentSpanId: spanIds.run(this.runId),
      name: `invoke_agent ${agent}`,
      start,
      end: finishedAt,
      attributes: {
        "runyard.run.id": this.runId,
        ...(this.record?.tenant_id ? { "runyard.tenant.id": this.record.tenant_id } : {}),
        "runyard.agent": agent,
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": agent,
        "gen_ai.system": providers[agent] ?? agent,
        ...(model ? { "gen_ai.request.model": model } : {}),
        ...(summary
          ? {
              "runyard.agent.status": summary.status,
              "gen_ai.usage.input_tokens": summary.input_tokens,
              "gen_ai.usage.output_tokens": summary.output_tokens,
              ...(summary.cost_usd !== undefined ? { "runyard.cost_usd": summary.cost_usd } : {}),
              ...(summary.error
                ? { "error.type": summary.error.code, "runyard.error.code": summary.error.code }
                : {}),
            }
          : {}),
      },
      events: turn.events,
      ...(summary && summary.status !== "success" ? { error: summary.error?.code ?? summary.status } : {}),
    };
  }
}
