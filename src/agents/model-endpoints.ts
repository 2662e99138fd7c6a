import type { EgressDestination } from "../exec/egress-proxy.js";
import { codexHomeOf, readCodexConfig } from "./codex-config.js";
import type { RunnerEnv } from "./types.js";

/**
 * Where each agent calls its model when nothing points it elsewhere: what a sandbox's egress
 * proxy lets through for it, besides the endpoints its settings name.
 */
const defaultEndpoints: Record<string, readonly string[]> = {
  claude_code: ["https://api.anthropic.com"],
  codex: ["https://api.openai.com", "https://chatgpt.com"],
  openai: ["https://api.openai.com"],
  opencode: ["https://api.anthropic.com", "https://api.openai.com", "https://models.dev"],
  gemini: ["https://generativelanguage.googleapis.com", "https://oauth2.googleapis.com"],
  copilot: ["https://api.githubcopilot.com", "https://api.github.com"],
};

/**
 * The runner env settings each agent (its CLI or runyard's adapter) reads as its model endpoint:
 * only these open a sandbox's egress, only for that agent. Any other (`OTEL_EXPORTER_OTLP_ENDPOINT`,
 * `GITHUB_API_URL`, ...) was set for something else: opening it would let a prompt reach that host.
 * - Claude Code 2.1.197: `ANTHROPIC_BASE_URL`, and the base URL of each other provider it calls
 *   (Bedrock, Bedrock Mantle, Vertex, Foundry, Claude Platform on AWS);
 * - Codex: `OPENAI_BASE_URL` (runyard's adapter turns it into a provider; Codex ignores it) and
 *   `CODEX_OSS_BASE_URL` (Codex's built-in `oss` provider); its config's `base_url` is read apart;
 * - the built-in `openai` loop: `OPENAI_BASE_URL`;
 * - OpenCode 1.18.33: its built-in OpenAI and Anthropic providers' `OPENAI_BASE_URL` and
 *   `ANTHROPIC_BASE_URL`;
 * - Gemini CLI 0.61.0: `GOOGLE_GEMINI_BASE_URL`, `GOOGLE_VERTEX_BASE_URL` (with Vertex AI) and
 *   `CODE_ASSIST_ENDPOINT` (with a Google login);
 * - Copilot CLI 1.0.102: `COPILOT_PROVIDER_BASE_URL`.
 */
export const runnerEndpointSettings: Record<string, readonly string[]> = {
  claude_code: [
    "ANTHROPIC_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL",
    "ANTHROPIC_BEDROCK_MANTLE_BASE_URL",
    "ANTHROPIC_VERTEX_BASE_URL",
    "ANTHROPIC_FOUNDRY_BASE_URL",
    "ANTHROPIC_AWS_BASE_URL",
  ],
  codex: ["OPENAI_BASE_URL", "CODEX_OSS_BASE_URL"],
  openai: ["OPENAI_BASE_URL"],
  opencode: ["OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"],
  gemini: ["GOOGLE_GEMINI_BASE_URL", "GOOGLE_VERTEX_BASE_URL", "CODE_ASSIST_ENDPOINT"],
  copilot: ["COPILOT_PROVIDER_BASE_URL"],
};

/**
 * Prefixes of runner variables each agent reads as its own settings (keys, endpoints, switches): a
 * member's sandboxed turn gets these and its adapter's `credentialEnv`, and no other agent's.
 */
const ownSettingPrefixes: Record<string, readonly string[]> = {
  claude_code: ["ANTHROPIC_", "CLAUDE_"],
  codex: ["OPENAI_", "CODEX_"],
  openai: ["OPENAI_"],
  opencode: ["OPENAI_", "ANTHROPIC_", "OPENCODE_"],
  gemini: ["GEMINI_", "GOOGLE_"],
  copilot: ["COPILOT_"],
};

/** Whether `name` of the runner's env is one of `agent`'s own settings (see ownSettingPrefixes). */
export function isOwnSetting(agent: string, name: string): boolean {
  return (ownSettingPrefixes[agent] ?? []).some((prefix) => name.startsWith(prefix));
}

/**
 * What a task's env may name as its agent's endpoint: any name of this shape
 * (`OPENAI_BASE_URL`, `OPENAI_API_BASE`, `AZURE_OPENAI_ENDPOINT`, ...). Broad on purpose: such a
 * task loses the runner's keys, and its endpoints reach public addresses only.
 */
const endpointSetting = /_(BASE_URL|API_URL|API_BASE|ENDPOINT)$/;

/**
 * Whether a task's env names an endpoint of its own (`endpointSetting`, whichever agent reads it):
 * such a task gets none of the runner's credentials, which would go to that server.
 */
export function namesOwnEndpoint(taskEnv: Readonly<Record<string, string>>): boolean {
  return Object.keys(taskEnv).some((name) => endpointSetting.test(name));
}

/**
 * Where a sandboxed turn of `agent` may connect: its default endpoints and those its settings name.
 * The operator's (`runnerEndpointSettings`, its Codex config) go anywhere; a URL the task's env names
 * only to public addresses, so a member cannot open the runner's private network as a model endpoint.
 */
export function modelDestinations(
  agent: string,
  runnerEnv: RunnerEnv,
  taskEnv: Readonly<Record<string, string>>,
): EgressDestination[] {
  const found: EgressDestination[] = [];
  const add = (url: string | undefined, publicOnly: boolean) => {
    const destination = url ? destinationOf(url) : undefined;
    if (destination) found.push(publicOnly ? { ...destination, publicOnly } : destination);
  };
  for (const url of defaultEndpoints[agent] ?? []) add(url, false);
  for (const name of runnerEndpointSettings[agent] ?? []) add(runnerEnv[name], false);
  for (const [name, value] of Object.entries(taskEnv)) if (endpointSetting.test(name)) add(value, true);
  if (agent === "codex") {
    const home = codexHomeOf({}, runnerEnv);
    if (home) add(readCodexConfig(home.home)?.baseUrl, false);
  }
  return unique(found);
}

/** `host:port` of an http(s) URL; undefined for anything else. */
export function destinationOf(url: string): EgressDestination | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return undefined;
  const port = parsed.port ? Number(parsed.port) : parsed.protocol === "https:" ? 443 : 80;
  return { host: parsed.hostname.replace(/^\[|\]$/g, "").toLowerCase(), port };
}

function unique(list: EgressDestination[]): EgressDestination[] {
  const seen = new Set<string>();
  return list.filter((entry) => {
    const key = `${entry.host}:${entry.port}:${entry.publicOnly ? 1 : 0}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
