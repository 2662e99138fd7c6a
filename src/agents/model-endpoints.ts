import type { EgressDestination } from "../exec/egress-proxy.js";
import { codexHomeOf, readCodexConfig } from "./codex-config.js";

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

/** Settings that point an agent at its model (`ANTHROPIC_BASE_URL`, `OPENAI_BASE_URL`, `GOOGLE_GEMINI_BASE_URL`, ...). */
const endpointSetting = /_(BASE_URL|API_URL|API_BASE|ENDPOINT)$/;

/**
 * Whether a task's env points its agent at an endpoint of its own: any setting the sandbox's
 * egress reads as a model endpoint (`OPENAI_BASE_URL`, `OPENAI_API_BASE`,
 * `AZURE_OPENAI_ENDPOINT`, ...). Such a task gets none of the runner's credentials, which would
 * otherwise go to whatever server the submitter named.
 */
export function namesOwnEndpoint(taskEnv: Readonly<Record<string, string>>): boolean {
  return Object.keys(taskEnv).some((name) => endpointSetting.test(name));
}

/**
 * The destinations a sandboxed turn of `agent` may reach: its default endpoints and those its
 * settings name. The runner's own settings (its operator's) and its Codex config go anywhere
 * they point; a URL the task's env names (a member's) only to public addresses, so a member
 * cannot open the runner's private network to the agent by calling it a model endpoint.
 */
export function modelDestinations(
  agent: string,
  runnerEnv: Readonly<Record<string, string | undefined>>,
  taskEnv: Readonly<Record<string, string>>,
): EgressDestination[] {
  const found: EgressDestination[] = [];
  const add = (url: string | undefined, publicOnly: boolean) => {
    const destination = url ? destinationOf(url) : undefined;
    if (destination) found.push(publicOnly ? { ...destination, publicOnly } : destination);
  };
  for (const url of defaultEndpoints[agent] ?? []) add(url, false);
  for (const [name, value] of Object.entries(runnerEnv)) if (endpointSetting.test(name)) add(value, false);
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
