import { execFile } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { withoutCredentials } from "../core/config-env.js";
import { adapterFor } from "./registry.js";
import type { AgentAdapter, InstalledAgent, RunnerEnv } from "./types.js";

/** A Node CLI's `--version` is slow (gemini 0.61: ~4 s on a small machine, 15 s+ loaded); hangs are caught. */
export const VERSION_TIMEOUT_MS = 60_000;

export interface AgentLookup {
  /** `<runyard home>/agents`: where `runyard agents install` puts the CLIs. */
  agentsHome: string;
  /** The environment the runner gives agents: its PATH, and the credentials it holds. */
  env: RunnerEnv;
}

/** One agent's availability, as `runyard agents` and `GET /health/agents` report it. */
export interface AgentStatus {
  name: string;
  installed: boolean;
  path?: string;
  version?: string;
  /** The version `runyard agents install` installs. */
  pinned_version?: string;
  /** Whether one of its credential variables is set; never the value. */
  credentials: boolean;
  usable: boolean;
  /** Why it is not usable, with what to do about it. */
  problem?: string;
}

/** An agent's CLI: runyard's install (`<agentsHome>/<name>/node_modules/.bin`), then PATH; `openai` always. */
export async function findAgent(name: string, lookup: AgentLookup): Promise<InstalledAgent | undefined> {
  const path = agentPath(name, lookup);
  if (path === undefined) return undefined;
  return { path, version: path === "" ? null : await cliVersion(path, lookup.env) };
}

/** Where an agent's CLI is, without a slow `--version`: "" for the built-in loop, undefined when nowhere. */
export function agentPath(name: string, lookup: AgentLookup): string | undefined {
  const adapter = adapterFor(name);
  if (!adapter) return undefined;
  return adapter.package ? locate(adapter, lookup) : "";
}

/** Installed, with credentials, usable: what a runner can tell about an agent before a run. */
export async function agentStatus(name: string, lookup: AgentLookup): Promise<AgentStatus> {
  const adapter = adapterFor(name);
  if (!adapter) {
    return {
      name,
      installed: false,
      credentials: false,
      usable: false,
      problem: `runyard knows no agent ${name}`,
    };
  }
  const credentials = adapter.credentialEnv.some((variable) => Boolean(lookup.env[variable]));
  const pinned = adapter.package ? { pinned_version: adapter.package.version } : {};
  if (!adapter.package) {
    // The built-in loop needs no CLI: a key, or a model server on this machine that needs none.
    const usable = credentials || loopbackUrl(lookup.env.OPENAI_BASE_URL);
    return {
      name,
      installed: true,
      credentials,
      usable,
      ...(usable
        ? {}
        : { problem: "no OPENAI_API_KEY: set it (and OPENAI_BASE_URL for another OpenAI-compatible API)" }),
    };
  }
  const found = await findAgent(name, lookup);
  if (!found) {
    return {
      name,
      installed: false,
      ...pinned,
      credentials,
      usable: false,
      problem: `${adapter.package.bin} not found: run \`runyard agents install ${name}\`, or put ${adapter.package.bin} on PATH`,
    };
  }
  const status: AgentStatus = {
    name,
    installed: true,
    path: found.path,
    ...(found.version === null ? {} : { version: found.version }),
    ...pinned,
    credentials,
    usable: false,
  };
  if (found.version === null) {
    return {
      ...status,
      problem: `${found.path} --version failed: reinstall it with \`runyard agents install ${name}\``,
    };
  }
  if (!credentials) {
    return { ...status, problem: `no credentials: set ${adapter.credentialEnv.join(" or ")}` };
  }
  return { ...status, usable: true };
}

function locate(adapter: AgentAdapter, lookup: AgentLookup): string | undefined {
  const bin = adapter.package!.bin;
  const candidates = [
    join(lookup.agentsHome, adapter.name, "node_modules", ".bin", bin),
    ...(lookup.env.PATH ?? "")
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, bin)),
  ];
  return candidates.find(isExecutable);
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Versions by path and modification time: a reinstall changes the time, and so the answer. */
const versions = new Map<string, Promise<string | null>>();

/** The first version-like word `<bin> --version` prints (`2.1.197 (Claude Code)` → 2.1.197), or null. */
export function cliVersion(
  path: string,
  env: RunnerEnv,
  timeoutMs = VERSION_TIMEOUT_MS,
): Promise<string | null> {
  let key: string;
  try {
    key = `${path}\0${statSync(path).mtimeMs}`;
  } catch {
    return Promise.resolve(null);
  }
  const cached = versions.get(key);
  if (cached) return cached;
  const asked = new Promise<string | null>((resolve) => {
    execFile(
      path,
      ["--version"],
      { timeout: timeoutMs, encoding: "utf8", env: withoutCredentials(env) },
      (error, stdout) => resolve(error ? null : versionIn(stdout)),
    );
  });
  versions.set(key, asked);
  // A failure may be passing (a slow machine): ask again next time.
  void asked.then((version) => {
    if (version === null) versions.delete(key);
  });
  return asked;
}

export function versionIn(text: string): string | null {
  const match = /\d+\.\d+(?:\.\d+)?(?:[-+][0-9A-Za-z.-]+)?/.exec(text);
  return match ? match[0] : text.trim().split("\n")[0] || null;
}

function loopbackUrl(url: string | undefined): boolean {
  if (!url) return false;
  try {
    const host = new URL(url).hostname;
    return host === "localhost" || host === "[::1]" || /^127\.\d+\.\d+\.\d+$/.test(host);
  } catch {
    return false;
  }
}
