import { homedir } from "node:os";
import { isOwnSetting } from "../agents/model-endpoints.js";
import { adapterFor } from "../agents/registry.js";
import { credentialEnvNames, runEnvBase } from "../core/config-env.js";
import type { AgentTask } from "../core/jobs/agent.js";
import { isSecretName } from "../core/masking.js";
import type { EgressDestination } from "../exec/egress-proxy.js";
import { type TurnOutcome, turnFailed } from "./handlers/agent.js";
import type { ModelKeyProxy } from "./model-key-proxy.js";

/**
 * The runner's environment as a member's turn of `agent` sees it on a sandboxing runner: what a
 * member's step starts from (`PATH`, `HOME`, `LANG`, `LC_*`, `TZ`, `TERM`) and that agent's own
 * settings (its keys and endpoints: `ANTHROPIC_*` for Claude Code, `OPENAI_*` for the built-in
 * loop, ...). Another agent's key, the operator's `GITHUB_TOKEN` or `AWS_*`, and the names the
 * operator passes to platform runs (`step_pass_env`) stay out.
 */
export function memberAgentEnv(
  agent: string,
  runner: Readonly<Record<string, string | undefined>>,
): Record<string, string | undefined> {
  const env: Record<string, string | undefined> = runEnvBase(runner, [], runner.HOME || homedir());
  const credentials = adapterFor(agent)?.credentialEnv ?? [];
  for (const [name, value] of Object.entries(runner)) {
    if (value === undefined || credentialEnvNames.includes(name)) continue;
    if (isOwnSetting(agent, name) || credentials.includes(name)) env[name] = value;
  }
  return env;
}

/** The name a container's turn reaches the runner's model key proxies by, through its egress proxy. */
const keyProxyHost = "model-key-proxy.runyard.internal";

/**
 * A turn's key proxies as a container reaches them: its endpoints named by `keyProxyHost` and
 * the proxy's port (a container's loopback is its own), and those destinations, which its egress
 * proxy connects to the runner's loopback.
 */
export function reachedFromContainers(proxied: {
  proxies: ModelKeyProxy[];
  env: Record<string, string | undefined>;
}): {
  keyProxy: { proxies: ModelKeyProxy[]; env: Record<string, string | undefined> };
  reached: EgressDestination[];
} {
  const env = { ...proxied.env };
  const reached: EgressDestination[] = [];
  for (const proxy of proxied.proxies) {
    const port = Number(new URL(proxy.url).port);
    reached.push({ host: keyProxyHost, port, address: "127.0.0.1" });
    for (const [name, value] of Object.entries(env)) {
      if (value === proxy.url) env[name] = `http://${keyProxyHost}:${port}`;
    }
  }
  return { keyProxy: { proxies: proxied.proxies, env }, reached };
}

/**
 * `env` without the credentials a proxy did not take the place of (`carriesCredential`): those
 * a member's CLI would send its model itself, which no member's turn holds.
 */
export function withoutOperatorKeys(
  env: Readonly<Record<string, string | undefined>>,
  proxies: readonly ModelKeyProxy[],
): Record<string, string | undefined> {
  const placeholders = new Set(proxies.map((proxy) => proxy.placeholder));
  const kept: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(env)) {
    if (carriesCredential(name) && !(value !== undefined && placeholders.has(value))) continue;
    kept[name] = value;
  }
  return kept;
}

/** The variables Copilot CLI logs in to GitHub with (GITHUB_TOKEN stays with git: gitTokenNames). */
const githubLogins = ["COPILOT_GITHUB_TOKEN", "GH_TOKEN"];

/**
 * A member's Copilot CLI turn that would run on the runner's GitHub login: Copilot CLI calls
 * GitHub's own API with it, which no proxy of the runner takes the place of, and a member's turn
 * never holds the operator's token. Refused, saying what would let it run: a provider of the
 * runner's (whose key its proxy adds) or a token of the task's own. Undefined otherwise.
 */
export function githubLoginRefusal(
  task: AgentTask,
  memberEnv: Readonly<Record<string, string | undefined>>,
): TurnOutcome | undefined {
  if (task.agent !== "copilot" || memberEnv.COPILOT_PROVIDER_BASE_URL) return undefined;
  const own = adapterFor("copilot")?.credentialEnv ?? [];
  if (own.some((name) => task.env[name])) return undefined;
  const login = githubLogins.find((name) => memberEnv[name]);
  if (!login) return undefined;
  return turnFailed({
    code: "AGENT_AUTH",
    message: `copilot would run on this runner's GitHub login (${login}), which no member's turn is given: it calls GitHub's API with it, which the runner cannot key for it`,
    hint: "Bring your own token in the task's env (COPILOT_GITHUB_TOKEN, as a secret), or ask the runner's operator to give Copilot CLI a provider of the runner's (COPILOT_PROVIDER_BASE_URL and COPILOT_PROVIDER_API_KEY in the runner's env), whose key the runner adds to a member's calls.",
  });
}

/**
 * Whether a setting of the runner's env carries a credential a CLI sends with its model calls,
 * or reads one from: a secret's name (`*_KEY`, `*_TOKEN`, ...), and those that hold one under
 * another name: headers sent with every call (Claude Code's `ANTHROPIC_CUSTOM_HEADERS`, a
 * gateway's key among them), a credentials file (`GOOGLE_APPLICATION_CREDENTIALS`, `*_TOKEN_FILE`)
 * and a key's id (`AWS_ACCESS_KEY_ID`).
 */
export function carriesCredential(name: string): boolean {
  return (
    isSecretName(name) ||
    /_(HEADERS|CREDENTIALS|KEY_ID)$/i.test(name) ||
    /_(TOKEN|KEY|SECRET|PASSWORD|CREDENTIALS)_FILE$/i.test(name)
  );
}
