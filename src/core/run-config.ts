import type { Config } from "./config.js";
import { configInput } from "./config-env.js";

/** The settings `runyard run` reads (their schema: run-config-schema.ts). */
export const runConfigKeys = ["killGraceMs", "serverUrl", "token", "maxWorkflowBytes"] as const;

/** What `runyard run` reads of the config. */
export type RunConfig = Pick<Config, (typeof runConfigKeys)[number]>;

/** The values `runyard run` uses for the settings it reads when none is set. */
export const runConfigDefaults = { killGraceMs: 5000, maxWorkflowBytes: 1024 * 1024 } as const;

/**
 * The config as `runyard run` needs it. When env and `overrides` set nothing, it is the
 * defaults, and no schema is loaded (zod/mini is about a sixth of the code a run loads). When
 * they set only the keys above and their values are good, they are parsed with those keys'
 * schema; any other setting, or a bad value, goes through the whole schema (loadConfig), so
 * every setting is checked and every error is worded as on any other command.
 */
export async function loadRunConfig(
  env: Record<string, string | undefined>,
  overrides: Partial<Record<keyof Config, unknown>> = {},
): Promise<RunConfig> {
  const { raw } = configInput(env, overrides);
  const keys = Object.keys(raw);
  if (keys.length === 0) return { ...runConfigDefaults };
  if (keys.every((key) => (runConfigKeys as readonly string[]).includes(key))) {
    const parsed = (await import("./run-config-schema.js")).parseRunConfig(raw);
    if (parsed) return parsed;
  }
  return (await import("./config.js")).loadConfig(env, overrides);
}
