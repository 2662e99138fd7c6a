import * as z from "zod/mini";
import type { Config } from "./config.js";
import { configInput } from "./config-env.js";

/**
 * The settings `runyard run` reads, declared here once and spread into the one config schema
 * (config.ts). They are written with zod/mini, which a bundle takes only the parts it uses of,
 * so a local run checks them without loading the whole of zod (about 40 ms of a start).
 */
export const runConfigShape = {
  /** Milliseconds between SIGTERM and SIGKILL when a step is stopped. */
  killGraceMs: z._default(z.coerce.number().check(z.int(), z.nonnegative()), 5000),
  /**
   * Server URL a runner or a submitting CLI talks to; several replicas comma-separated. Kept as
   * written here and read with `parseServerUrls` (server-urls.ts) by the commands that use it.
   */
  serverUrl: z.optional(z.string()),
  /** Token for the server: an admin/user token for the CLI, a runner token for a runner. */
  token: z.optional(z.string()),
  /**
   * Server, `runyard run` and `runyard validate`: the largest workflow, in bytes of its text and
   * of its form with every YAML alias expanded; a larger one is refused (WORKFLOW_TOO_LARGE).
   */
  maxWorkflowBytes: z._default(z.coerce.number().check(z.int(), z.positive()), 1024 * 1024),
};

/** What `runyard run` reads of the config. */
export type RunConfig = Pick<Config, keyof typeof runConfigShape>;

const runConfigSchema = z.object(runConfigShape);

/**
 * The config as `runyard run` needs it. When env and `overrides` set only the keys above and
 * their values are good, they are parsed here; any other setting, or a bad value, goes through
 * the whole schema (loadConfig), so every setting is checked and every error is worded as on
 * any other command.
 */
export async function loadRunConfig(
  env: Record<string, string | undefined>,
  overrides: Partial<Record<keyof Config, unknown>> = {},
): Promise<RunConfig> {
  const { raw } = configInput(env, overrides);
  if (Object.keys(raw).every((key) => key in runConfigShape)) {
    const parsed = z.safeParse(runConfigSchema, raw);
    if (parsed.success) return parsed.data;
  }
  return (await import("./config.js")).loadConfig(env, overrides);
}
