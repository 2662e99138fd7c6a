import type { components } from "../client/api-types.js";
import type { RunEvent } from "../core/events.js";
import { printable } from "../core/terminal-text.js";
import { type ApiClient, apiClient } from "./api-client.js";
import { approvalLines } from "./approvals.js";
import type { CliContext } from "./context.js";
import { type ListedRunner, waitingLines } from "./queue-wait.js";
import { eventRenderer, exitCodeFor } from "./run.js";
import { printJson, printList, table } from "./table.js";
import { parseVarFlags, readWorkflowText } from "./workflow-file.js";

type RunView = components["schemas"]["Run"];

/** A run, and why it waits if it is queued (the server says, knowing every runner). */
async function runWithWait(api: ApiClient, runId: string): Promise<{ run: RunView; waiting: string[] }> {
  const run = await api.request<RunView>("GET", `/api/runs/${encodeURIComponent(runId)}`);
  const waiting =
    run.status === "queued" ? waitingLines(run.waiting_for ?? []) : approvalLines(run.approvals ?? []);
  return { run, waiting };
}

/** `runyard run FILE --server URL`: submits the workflow and streams its output like a local run. */
export async function submitRun(
  file: string,
  flags: { var: string[]; json?: boolean; quiet?: boolean; rollback?: boolean },
  ctx: CliContext,
): Promise<number> {
  const text = await readWorkflowText(file);
  const api = apiClient(ctx);
  const { run_id } = await api.submit<{ run_id: string }>("POST", "/api/runs", {
    kind: "workflow",
    workflow: text,
    vars: parseVarFlags(flags.var),
    file,
    ...(flags.rollback === false ? { no_rollback: true } : {}),
  });
  if (!flags.json && !flags.quiet) ctx.stderr.write(`run ${run_id} submitted to ${api.baseUrl}\n`);
  if (!flags.json) {
    for (const line of (await runWithWait(api, run_id)).waiting) ctx.stderr.write(`${line}\n`);
  }
  return follow(api, run_id, flags, ctx);
}

export async function follow(
  api: ApiClient,
  runId: string,
  flags: { json?: boolean; quiet?: boolean },
  ctx: CliContext,
): Promise<number> {
  const render = eventRenderer(flags, ctx);
  let canceling = false;
  const off = ctx.onInterrupt(() => {
    if (canceling) return;
    canceling = true;
    ctx.stderr.write(`canceling run ${runId}...\n`);
    void api.request("POST", `/api/runs/${runId}/cancel`).catch(() => undefined);
  });
  try {
    const finished = await api.events(runId, { follow: true, onEvent: render });
    return exitCodeFor(finished?.type === "run.finished" ? finished.status : undefined);
  } finally {
    off();
  }
}

function age(iso: string | null): string {
  if (!iso) return "-";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (seconds < 90) return `${seconds}s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
}

function duration(run: RunView): string {
  if (!run.started_at) return "-";
  const end = run.finished_at ? Date.parse(run.finished_at) : Date.now();
  return `${((end - Date.parse(run.started_at)) / 1000).toFixed(1)}s`;
}

export async function runsList(
  flags: { status?: string; kind?: string; limit?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const query = new URLSearchParams();
  if (flags.status) query.set("status", flags.status);
  if (flags.kind) query.set("kind", flags.kind);
  if (flags.limit) query.set("limit", flags.limit);
  const page = await apiClient(ctx).request<{ runs: RunView[]; next: string | null }>(
    "GET",
    `/api/runs?${query}`,
  );
  if (flags.json) return printJson(ctx.stdout, page);
  if (page.runs.length === 0) {
    const which = [flags.status, flags.kind].filter(Boolean).join(" ");
    ctx.stdout.write(
      which
        ? `no ${which} runs; \`runyard runs list\` shows runs in every state\n`
        : "no runs yet; submit one with `runyard run FILE --server URL`\n",
    );
    return 0;
  }
  const rows = [["RUN", "STATUS", "NAME", "TRIGGER", "CREATED", "DURATION"]];
  for (const run of page.runs)
    rows.push([run.run_id, run.status, run.name, run.trigger, age(run.created_at), duration(run)]);
  ctx.stdout.write(`${table(rows)}\n`);
  return 0;
}

export async function runsShow(id: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const { run, waiting } = await runWithWait(apiClient(ctx), id);
  if (flags.json) return printJson(ctx.stdout, run);
  ctx.stdout.write(
    `run ${run.run_id}: ${printable(run.name)} (${run.kind}) ${run.status}, ${duration(run)}\n`,
  );
  const saved =
    run.saved_workflow !== null
      ? `, saved workflow ${printable(run.saved_workflow)} version ${run.saved_version}`
      : "";
  ctx.stdout.write(`  trigger: ${printable(run.trigger)}${saved}\n`);
  if (run.created_by !== null) {
    const triggeredBy = printable(run.created_by_name ?? run.created_by);
    const author = printable(run.authored_by_name ?? run.authored_by ?? "unknown");
    const written = run.authored_by !== run.created_by ? `, written by ${author}` : "";
    ctx.stdout.write(`  by: ${triggeredBy}${written}\n`);
  }
  if (run.retry_of !== null)
    ctx.stdout.write(`  retry of: ${run.retry_of} from step ${printable(run.retry_from ?? "-")}\n`);
  for (const retry of run.retries ?? [])
    ctx.stdout.write(
      `  retried by: ${retry.run_id} from step ${printable(retry.from ?? "-")} (${retry.status})\n`,
    );
  // Why it waits names what users chose (a concurrency group, a tenant, a runner group).
  for (const line of waiting) ctx.stdout.write(`  ${printable(line)}\n`);
  if (run.error) ctx.stdout.write(`  ${printable(run.error.code)}: ${printable(run.error.message)}\n`);
  if (run.rolled_back) ctx.stdout.write("  rolled back: every rollback succeeded\n");
  if (run.rollback_failed)
    ctx.stdout.write(`  rollback failed: ${printable(run.rollback_failed)}; later rollbacks did not run\n`);
  if (run.steps.length > 0) {
    const rows = [["STEP", "HOST", "STATUS", "EXIT", "ATTEMPTS"]];
    for (const s of run.steps)
      rows.push([s.name, s.host, s.status, String(s.exit_code ?? "-"), String(s.attempts)]);
    ctx.stdout.write(`${table(rows)}\n`);
  }
  const names = Object.keys(run.vars);
  if (names.length > 0)
    ctx.stdout.write(`vars: ${names.map((n) => printable(`${n}=${run.vars[n]}`)).join(" ")}\n`);
  return 0;
}

export async function runsLogs(
  id: string,
  flags: { follow?: boolean; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const render = eventRenderer(flags, ctx);
  let last: RunEvent | undefined;
  await apiClient(ctx).events(id, {
    follow: Boolean(flags.follow),
    onEvent: (event) => {
      last = event;
      render(event);
    },
  });
  return last?.type === "run.finished" ? exitCodeFor(last.status) : 0;
}

export async function runsCancel(id: string, ctx: CliContext): Promise<number> {
  const run = await apiClient(ctx).request<{ run_id: string; status: string }>(
    "POST",
    `/api/runs/${encodeURIComponent(id)}/cancel`,
  );
  ctx.stdout.write(`run ${run.run_id}: ${run.status}\n`);
  return 0;
}

export async function runnersList(flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const runners = await apiClient(ctx).request<Array<ListedRunner>>("GET", "/api/runners");
  return printList(ctx.stdout, runners, {
    json: flags.json,
    empty: "no runners yet; start one with `runyard runner --server URL --token T`",
    header: ["RUNNER", "GROUP", "STATE", "HOST", "JOBS", "TENANT", "SHARED", "ISOLATION", "LABELS"],
    row: (r) => [
      r.id,
      r.group,
      r.state,
      r.hostname,
      `${r.running_jobs.length}/${r.capacity}`,
      r.tenant_id ?? "-",
      r.shared ? "yes" : "no",
      r.isolation,
      r.labels.join(",") || "-",
    ],
  });
}
