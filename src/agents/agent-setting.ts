import type { AgentSetting, SetupContext } from "./types.js";

/**
 * Where an agent's setting comes from, the first that has it: the run's own model (`model`), the
 * run's env `env`, the runner's, the CLI's config file (`file`, shown as `shown`), else `fallback`.
 */
export function firstSetting(
  context: SetupContext,
  from: { model?: boolean; env?: string; file?: string; shown?: string; fallback: string },
): AgentSetting {
  const { env, file } = from;
  if (from.model && context.model) return { value: context.model, source: "run" };
  if (env && context.run[env]) return { value: context.run[env], source: "run env" };
  if (env && context.runner[env]) return { value: context.runner[env] ?? "", source: "runner env" };
  if (file) return { value: file, source: from.shown ?? "" };
  return { value: from.fallback, source: "default" };
}
