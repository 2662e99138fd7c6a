import { basename, extname } from "node:path";
import type { components, operations } from "../client/api-types.js";
import { RunyardError } from "../core/errors.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import type { CliContext } from "./context.js";
import { follow } from "./runs.js";
import { printJson, printList, table } from "./table.js";
import { parseVarFlags, readWorkflowText } from "./workflow-file.js";

type SavedWorkflow = components["schemas"]["SavedWorkflow"];
type Schedule = SavedWorkflow["schedules"][number];
interface TenantFlag {
  /** Platform admins: act on this tenant's saved workflows. */
  tenant?: string;
}

function workflowPath(name: string | undefined, flags: TenantFlag, query = new URLSearchParams()): string {
  if (flags.tenant) query.set("tenant", flags.tenant);
  const search = query.size > 0 ? `?${query}` : "";
  return `/api/workflows${name === undefined ? "" : `/${encodeURIComponent(name)}`}${search}`;
}

function scheduleLine(schedule: Schedule): string {
  return `schedule ${schedule.cron} (${schedule.timezone}, overlap ${schedule.overlap}, catch_up ${schedule.catch_up}), next tick ${schedule.next_tick_at ?? "never"}`;
}

/** The name a file is saved under without --name: `deploy.yaml` is "deploy". */
function defaultName(file: string): string {
  return basename(file, extname(file));
}

/** `runyard workflow save FILE [--name N]`: stores the file as the name's next version. */
export async function workflowSave(
  file: string,
  flags: TenantFlag & { name?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const text = await readWorkflowText(file);
  const saved = await apiClient(ctx).request<
    operations["saveWorkflow"]["responses"][201]["content"]["application/json"]
  >("POST", workflowPath(undefined, flags), { name: flags.name ?? defaultName(file), workflow: text, file });
  if (flags.json) return printJson(ctx.stdout, saved);
  ctx.stdout.write(`saved workflow ${saved.name} version ${saved.version}\n`);
  if (!saved.promoted) {
    const whose = saved.waiting_for.map(
      (t) =>
        `${t.kind === "hook" ? `hook ${printable(t.name)}` : `schedule "${printable(t.name)}"`} (${printable(t.owner_name ?? t.owner ?? "unknown")})`,
    );
    ctx.stdout.write(
      `pending: ${whose.join(", ")} keep${whose.length === 1 ? "s" : ""} running the live version until a tenant admin or their owner runs \`runyard workflow promote ${saved.name} ${saved.version}\`\n`,
    );
  }
  for (const schedule of saved.schedules)
    ctx.stdout.write(`  ${scheduleLine(schedule)}${saved.promoted ? "" : " (once promoted)"}\n`);
  return 0;
}

/** `runyard workflow list`. */
export async function workflowList(flags: TenantFlag & { json?: boolean }, ctx: CliContext): Promise<number> {
  const { workflows } = await apiClient(ctx).request<
    operations["listWorkflows"]["responses"][200]["content"]["application/json"]
  >("GET", workflowPath(undefined, flags));
  return printList(ctx.stdout, workflows, {
    json: flags.json,
    empty: "no saved workflows yet; save one with `runyard workflow save FILE`",
    header: ["NAME", "VERSION", "LIVE", "PENDING", "VERSIONS", "SAVED", "TENANT"],
    row: (w) => [
      w.name,
      String(w.latest_version),
      w.live_version === null ? "-" : String(w.live_version),
      w.pending_versions.length === 0 ? "-" : w.pending_versions.join(","),
      String(w.versions),
      w.updated_at,
      w.tenant_id ?? "-",
    ],
  });
}

/** `runyard workflow show NAME [--version V]`: the version's text, its versions and schedules. */
export async function workflowShow(
  name: string,
  flags: TenantFlag & { version?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const query = new URLSearchParams();
  if (flags.version !== undefined) query.set("version", flags.version);
  const saved = await apiClient(ctx).request<SavedWorkflow>("GET", workflowPath(name, flags, query));
  if (flags.json) return printJson(ctx.stdout, saved);
  const newest = saved.versions[0]?.version ?? saved.version;
  ctx.stdout.write(
    `workflow ${saved.name} version ${saved.version}${saved.version === newest ? " (newest)" : ` (newest: ${newest})`}, saved ${saved.created_at}\n`,
  );
  for (const schedule of saved.schedules) ctx.stdout.write(`${scheduleLine(schedule)}\n`);
  ctx.stdout.write(`live version: ${saved.live_version ?? "none"}\n`);
  const rows = [["VERSION", "STATE", "SAVED BY", "SAVED", "PROMOTED BY"]];
  for (const v of saved.versions)
    rows.push([
      String(v.version),
      v.state,
      v.created_by_name ?? v.created_by ?? "-",
      v.created_at,
      v.promoted_at === null ? "-" : (v.promoted_by_name ?? v.promoted_by ?? "-"),
    ]);
  ctx.stdout.write(`${table(rows)}\n---\n`);
  ctx.stdout.write(printable(saved.workflow).endsWith("\n") ? saved.workflow : `${saved.workflow}\n`);
  return 0;
}

/** `runyard workflow promote NAME VERSION`: what its hooks and schedules run from now on. */
export async function workflowPromote(
  name: string,
  version: string,
  flags: TenantFlag & { json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const number = Number(version);
  if (!Number.isInteger(number) || number < 1)
    throw new RunyardError("USAGE", `${version}: expected a version number, like 3`);
  const promoted = await apiClient(ctx).request<
    operations["promoteWorkflow"]["responses"][200]["content"]["application/json"]
  >("POST", workflowPath(name, flags).replace(/(\?|$)/, "/promote$1"), { version: number });
  if (flags.json) return printJson(ctx.stdout, promoted);
  ctx.stdout.write(
    `workflow ${promoted.name} version ${promoted.version} is live${promoted.previous === null ? "" : ` (was version ${promoted.previous})`}: its hooks and schedules run it\n`,
  );
  for (const schedule of promoted.schedules) ctx.stdout.write(`  ${scheduleLine(schedule)}\n`);
  return 0;
}

/** `runyard workflow rm NAME`: every version and its schedules. */
export async function workflowRemove(name: string, flags: TenantFlag, ctx: CliContext): Promise<number> {
  const removed = await apiClient(ctx).request<{ name: string }>("DELETE", workflowPath(name, flags));
  ctx.stdout.write(`removed saved workflow ${removed.name} and its schedules\n`);
  return 0;
}

/** `runyard workflow run NAME [--var K=V] [--follow]`: queues a run; with --follow, streams it. */
export async function workflowRun(
  name: string,
  flags: TenantFlag & { var: string[]; version?: string; follow?: boolean; json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  let version: number | undefined;
  if (flags.version !== undefined) {
    version = Number(flags.version);
    if (!Number.isInteger(version) || version < 1)
      throw new RunyardError("USAGE", `--version ${flags.version}: expected a version number, like 3`);
  }
  const api = apiClient(ctx);
  const run = await api.submit<{ run_id: string; saved_version: number }>(
    "POST",
    `${workflowPath(name, flags).replace(/(\?|$)/, "/runs$1")}`,
    { vars: parseVarFlags(flags.var), ...(version !== undefined ? { version } : {}) },
  );
  if (!flags.follow) {
    ctx.stdout.write(
      flags.json
        ? `${JSON.stringify(run)}\n`
        : `run ${run.run_id} queued (${name} version ${run.saved_version})\n`,
    );
    return 0;
  }
  if (!flags.json && !flags.quiet)
    ctx.stderr.write(
      `run ${run.run_id} of ${name} version ${run.saved_version} submitted to ${api.baseUrl}\n`,
    );
  return follow(api, run.run_id, flags, ctx);
}
