import { claudeCodeAgent } from "./claude-code.js";
import { codexAgent } from "./codex.js";
import { copilotAgent } from "./copilot.js";
import { geminiAgent } from "./gemini.js";
import { openaiAgent } from "./openai.js";
import { opencodeAgent } from "./opencode.js";
import { type AgentAdapter, type AgentName, agentNames } from "./types.js";

/** Every adapter runyard has, by agent name: adding an agent is its file and a line here. */
export const adapters: Record<AgentName, AgentAdapter> = {
  claude_code: claudeCodeAgent,
  codex: codexAgent,
  opencode: opencodeAgent,
  gemini: geminiAgent,
  copilot: copilotAgent,
  openai: openaiAgent,
};

/** The adapter of an agent, or undefined for a name runyard does not know. */
export function adapterFor(name: string): AgentAdapter | undefined {
  return Object.hasOwn(adapters, name) ? adapters[name as AgentName] : undefined;
}

/** The agents that are a CLI to install (all but the built-in loop), in the order of `agentNames`. */
export function cliAdapters(): AgentAdapter[] {
  return agentNames.map((name) => adapters[name]).filter((adapter) => adapter.package !== undefined);
}
