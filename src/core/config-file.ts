import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { z } from "zod";
import { type Config, QuotaOverrides } from "./config.js";
import { RunyardError } from "./errors.js";

/** Seed 000: which runner group works on which repository. */
export const RepoRoute = z.object({ name: z.string().min(1), work_runner_group: z.string().min(1) });
export type RepoRoute = z.infer<typeof RepoRoute>;

/**
 * The config file (`--config runyard.yaml`): the same settings as the RUNYARD_* variables in
 * snake_case, plus seed 000's `repos:` routing. Flags win over the file, the file over env.
 */
const ConfigFile = z
  .object({
    home: z.string(),
    log_level: z.string(),
    /** One URL, or replicas: comma-separated or a YAML list. */
    server_url: z.union([z.string(), z.array(z.string())]),
    token: z.string(),
    runner_id: z.string(),
    workspace_dir: z.string(),
    mode: z.string(),
    group: z.string(),
    labels: z.union([z.string(), z.array(z.string())]),
    capacity: z.number(),
    cpus: z.number(),
    memory: z.union([z.string(), z.number()]),
    hostname: z.string(),
    tenant_id: z.string(),
    host: z.string(),
    port: z.number(),
    max_run_log_bytes: z.number(),
    repos: z.array(RepoRoute),
    /** Server quotas: defaults for every tenant and user, and per-tenant and per-user limits. */
    quotas: QuotaOverrides.extend({
      default_max_concurrent_runs: z.number().int().nonnegative(),
      default_max_queued_runs: z.number().int().nonnegative(),
      max_bots_per_user: z.number().int().nonnegative(),
    })
      .partial()
      .strict(),
  })
  .partial()
  .strict();

export interface LoadedConfigFile {
  overrides: Partial<Record<keyof Config, unknown>>;
  repos: RepoRoute[];
}

export function readConfigFile(path: string): LoadedConfigFile {
  let raw: unknown;
  try {
    raw = parse(readFileSync(path, "utf8")) ?? {};
  } catch (error) {
    throw new RunyardError("INVALID_INPUT", `cannot read config file ${path}: ${(error as Error).message}`);
  }
  const parsed = ConfigFile.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`);
    throw new RunyardError("INVALID_INPUT", `config file ${path}: ${problems.join("; ")}`, {
      hint: "Keys are the RUNYARD_* settings in snake_case (group, labels, capacity, ...), repos and quotas (docs/security.md).",
    });
  }
  const file = parsed.data;
  const overrides: Partial<Record<keyof Config, unknown>> = {
    home: file.home,
    logLevel: file.log_level,
    serverUrl: Array.isArray(file.server_url) ? file.server_url.join(",") : file.server_url,
    token: file.token,
    runnerId: file.runner_id,
    workspaceDir: file.workspace_dir,
    mode: file.mode,
    group: file.group,
    labels: Array.isArray(file.labels) ? file.labels.join(",") : file.labels,
    capacity: file.capacity,
    cpus: file.cpus,
    memory: file.memory === undefined ? undefined : String(file.memory),
    hostname: file.hostname,
    tenantId: file.tenant_id,
    host: file.host,
    port: file.port,
    maxRunLogBytes: file.max_run_log_bytes,
    defaultMaxConcurrentRuns: file.quotas?.default_max_concurrent_runs,
    defaultMaxQueuedRuns: file.quotas?.default_max_queued_runs,
    maxBotsPerUser: file.quotas?.max_bots_per_user,
    quotas:
      file.quotas?.tenants || file.quotas?.users
        ? {
            ...(file.quotas.tenants ? { tenants: file.quotas.tenants } : {}),
            ...(file.quotas.users ? { users: file.quotas.users } : {}),
          }
        : undefined,
    repos: file.repos,
  };
  return { overrides, repos: file.repos ?? [] };
}

/** The runner group a repository's work goes to, per `repos:`; undefined when unrouted. */
export function groupForRepo(repos: RepoRoute[], repo: string): string | undefined {
  const name =
    repo
      .replace(/\.git$/, "")
      .split(/[/:]/)
      .pop() ?? repo;
  return repos.find((route) => route.name === repo || route.name === name)?.work_runner_group;
}
