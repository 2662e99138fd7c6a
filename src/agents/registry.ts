import { claudeCodeAgent } from "./claude-code.js";
import { codexAgent } from "./codex.js";
import { copilotAgent } from "./copilot.js";
import { geminiAgent } from "./gemini.js";
import { openaiAgent } from "./openai.js";
import { opencodeAgent } from "./opencode.js";
import type { AgentAdapter } from "./types.js";

/** Every adapter runyard has, by agent name: adding an agent is its file and a line here. */
export const adapters = {
  claude_code: claudeCodeAgent,
  codex: codexAgent,
  opencode: opencodeAgent,
  gemini: geminiAgent,
  copilot: copilotAgent,
  openai: openaiAgent,
} satisfies Record<string, AgentAdapter>;

/** The name of an agent runyard knows. */
export type AgentName = keyof typeof adapters;

/** Every agent runyard knows, in the registry's order. */
export const agentNames = Object.keys(adapters) as AgentName[];

/** The adapter of an agent, or undefined for a name runyard does not know. */
export function adapterFor(name: string): AgentAdapter | undefined {
  return Object.hasOwn(adapters, name) ? adapters[name as AgentName] : undefined;
}

/** The agents that are a CLI to install (all but the built-in loop), in the order of `agentNames`. */
export function cliAdapters(): AgentAdapter[] {
  return agentNames.map((name) => adapters[name]).filter((adapter) => adapter.package !== undefined);
}
