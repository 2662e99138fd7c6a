import type { EventOf, RunEvent } from "../../../../src/core/events.js";

/** What an agent said and did: its messages, tool calls and their results. */
export type TranscriptItem = EventOf<"agent.message" | "agent.tool_call" | "agent.tool_result">;

/** One agent's column of a run: what it said and did, and what it cost. */
export interface AgentColumn {
  agent: string;
  items: TranscriptItem[];
  inputTokens: number;
  outputTokens: number;
  costUsd: number | null;
  model: string | null;
}

/** The name shown for events without `agent` (a one-agent run of an older runner). */
export const soleAgent = "agent";

/** The agent.* events of a run, one column per agent, in the order the agents first spoke. */
export function agentColumns(events: RunEvent[]): AgentColumn[] {
  const columns = new Map<string, AgentColumn>();
  for (const event of events) {
    if (
      event.type !== "agent.message" &&
      event.type !== "agent.tool_call" &&
      event.type !== "agent.tool_result" &&
      event.type !== "agent.usage"
    )
      continue;
    const agent = event.agent ?? soleAgent;
    let column = columns.get(agent);
    if (!column) {
      column = { agent, items: [], inputTokens: 0, outputTokens: 0, costUsd: null, model: null };
      columns.set(agent, column);
    }
    if (event.type === "agent.usage") {
      column.inputTokens += event.input_tokens;
      column.outputTokens += event.output_tokens;
      if (event.cost_usd !== undefined) column.costUsd = (column.costUsd ?? 0) + event.cost_usd;
      if (event.model !== undefined) column.model = event.model;
    } else {
      column.items.push(event);
    }
  }
  return [...columns.values()];
}

/** A tool call's input as text: JSON, shortened when long. */
export function toolInput(input: unknown): string {
  const text = typeof input === "string" ? input : JSON.stringify(input, null, 1);
  return text.length > 2000 ? `${text.slice(0, 2000)}…` : text;
}
