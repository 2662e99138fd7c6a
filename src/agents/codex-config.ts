import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { RunnerEnv } from "./types.js";

/**
 * What runyard reads of a user's Codex config (`$CODEX_HOME/config.toml`, else `~/.codex/config.toml`): the
 * model, provider and its `base_url`, to show them (`runyard agents`), to know an endpoint is set there (so
 * a run never falls back to OpenAI's) and to cap the user's own provider's retries.
 */
export interface CodexUserConfig {
  path: string;
  model?: string;
  /** `model_provider`; Codex's default is its built-in `openai`. */
  provider?: string;
  /** The selected provider's `base_url` (or the top-level `openai_base_url` for `openai`). */
  baseUrl?: string;
  /** Whether the selected provider is a `[model_providers.<id>]` table of this file. */
  providerInFile: boolean;
}

/** Codex's home: the run's CODEX_HOME, else the runner's, else `$HOME/.codex`; undefined without a HOME. */
export function codexHomeOf(
  run: Readonly<Record<string, string>>,
  runner: RunnerEnv,
): { home: string; set: boolean } | undefined {
  const set = run.CODEX_HOME || runner.CODEX_HOME;
  if (set) return { home: set, set: true };
  const home = run.HOME || runner.HOME;
  return home ? { home: join(home, ".codex"), set: false } : undefined;
}

/** Reads `<codexHome>/config.toml`; undefined when there is none or it cannot be read. */
export function readCodexConfig(codexHome: string): CodexUserConfig | undefined {
  const path = join(codexHome, "config.toml");
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
  const values = tomlStrings(text);
  const provider = values.get("model_provider");
  const model = values.get("model");
  const providerUrl = provider ? values.get(`model_providers.${provider}.base_url`) : undefined;
  const baseUrl =
    providerUrl ?? (!provider || provider === "openai" ? values.get("openai_base_url") : undefined);
  const providerInFile =
    provider !== undefined &&
    [...values.keys()].some((key) => key.startsWith(`model_providers.${provider}.`));
  return {
    path,
    ...(model ? { model } : {}),
    ...(provider ? { provider } : {}),
    ...(baseUrl ? { baseUrl } : {}),
    providerInFile,
  };
}

/**
 * A TOML document's string values by dotted key (`model_providers.corp.base_url`): table headers, dotted and
 * quoted keys, basic and literal strings, inline tables one level deep. Anything else is skipped: runyard
 * reads only these few strings, and a line it cannot read never stops Codex, which reads the file itself.
 */
export function tomlStrings(text: string): Map<string, string> {
  const values = new Map<string, string>();
  let table: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const header = /^\[\s*([^[\]]+?)\s*\]\s*(#.*)?$/.exec(line);
    if (header) {
      table = splitKey(header[1] ?? "");
      continue;
    }
    const pair =
      /^((?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*'))*)\s*=\s*(.*)$/.exec(
        line,
      );
    if (!pair) continue;
    const key = [...table, ...splitKey(pair[1] ?? "")];
    const value = pair[2] ?? "";
    const inline = /^\{(.*)\}\s*(#.*)?$/.exec(value);
    if (inline) {
      for (const [inner, text] of tomlStrings((inline[1] ?? "").replace(/,/g, "\n"))) {
        values.set([...key, inner].join("."), text);
      }
      continue;
    }
    const string = stringValue(value);
    if (string !== undefined) values.set(key.join("."), string);
  }
  return values;
}

function splitKey(key: string): string[] {
  const parts = key.match(/"[^"]*"|'[^']*'|[^.\s]+/g) ?? [];
  return parts.map((part) => (/^["']/.test(part) ? part.slice(1, -1) : part));
}

function stringValue(value: string): string | undefined {
  const basic = /^"((?:[^"\\]|\\.)*)"\s*(#.*)?$/.exec(value);
  if (basic) {
    try {
      return JSON.parse(`"${basic[1]}"`) as string;
    } catch {
      return undefined;
    }
  }
  const literal = /^'([^']*)'\s*(#.*)?$/.exec(value);
  return literal ? literal[1] : undefined;
}
