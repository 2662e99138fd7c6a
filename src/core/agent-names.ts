/**
 * The names of the agents runyard has adapters for (src/agents/registry.ts, whose test keeps the
 * two equal): what a workflow's `agent.run` step may name, checked where the file is parsed.
 */
export const knownAgentNames = ["claude_code", "codex", "opencode", "gemini", "copilot", "openai"] as const;
