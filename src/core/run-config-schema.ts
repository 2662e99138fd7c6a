import * as z from "zod/mini";
import { type RunConfig, runConfigDefaults, type runConfigKeys } from "./run-config.js";

/**
 * The settings `runyard run` reads, declared here once and spread into the one config schema
 * (config.ts). They are written with zod/mini, which a bundle takes only the parts it uses of,
 * so a local run that sets one of them checks it without loading the whole of zod; a run that
 * sets none loads no zod at all (run-config.ts).
 */
export const runConfigShape = {
  /** Milliseconds between SIGTERM and SIGKILL when a step is stopped. */
  killGraceMs: z._default(z.coerce.number().check(z.int(), z.nonnegative()), runConfigDefaults.killGraceMs),
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
  maxWorkflowBytes: z._default(
    z.coerce.number().check(z.int(), z.positive()),
    runConfigDefaults.maxWorkflowBytes,
  ),
} satisfies Record<(typeof runConfigKeys)[number], unknown>;

const runConfigSchema = z.object(runConfigShape);

/** `raw` checked against the run's own settings; undefined when a value is bad. */
export function parseRunConfig(raw: Record<string, unknown>): RunConfig | undefined {
  const parsed = z.safeParse(runConfigSchema, raw);
  return parsed.success ? parsed.data : undefined;
}
