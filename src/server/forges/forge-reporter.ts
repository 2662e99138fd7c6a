import type { AgentSummary, RunEvent } from "../../core/events.js";
import type { Logger } from "../../core/logger.js";
import { forgeClient } from "../../forges/registry.js";
import type { Store } from "../../store/index.js";
import type { EventBus } from "../event-bus.js";

/**
 * Tells the forge how its runs ended, once per run across replicas: a task that pushed its
 * branch opens a pull request whose body is the result table and comments the same on the issue;
 * a follow-up comments on its pull request; a failed task comments its typed error and hint,
 * and nothing is pushed (the agent run pushes only on success).
 */
export class ForgeReporter {
  private readonly unsubscribe: () => void;

  constructor(
    private readonly store: Pick<Store, "forges" | "runs">,
    bus: EventBus,
    private readonly logger: Logger,
    /** The web UI's base URL for run links ("" when unknown). */
    private readonly publicUrl: string,
  ) {
    this.unsubscribe = bus.subscribeAll((events) => {
      for (const event of events) {
        if (event.type === "run.finished") void this.report(event);
      }
    });
  }

  close(): void {
    this.unsubscribe();
  }

  private async report(event: Extract<RunEvent, { type: "run.finished" }>): Promise<void> {
    try {
      const task = await this.store.forges.getRun(event.run_id);
      if (!task || task.reported) return;
      const forge = await this.store.forges.get(task.forge_id);
      if (!forge) return;
      const summary = event.agents?.[0];
      const client = await forgeClient(this.store, forge);
      const table = resultTable(event, summary, this.runLink(event.run_id));
      if (event.status !== "success" || !summary?.pushed || !summary.branch) {
        if (!(await this.store.forges.markReported(event.run_id, task.pull_number))) return;
        const error = event.error ?? summary?.error;
        await client.comment(
          task.pull_number !== null ? { pull: task.pull_number } : { issue: task.issue_number },
          [
            `runyard's ${summary?.agent ?? "agent"} task ended **${event.status}**; nothing was pushed.`,
            ...(error
              ? [`\`${error.code}\`: ${error.message}`, ...(error.hint ? [`Hint: ${error.hint}`] : [])]
              : []),
            "",
            table,
          ].join("\n"),
        );
        return;
      }
      if (task.pull_number !== null) {
        if (!(await this.store.forges.markReported(event.run_id, task.pull_number))) return;
        await client.comment(
          { pull: task.pull_number },
          [`Pushed a new commit to \`${summary.branch}\`.`, "", table].join("\n"),
        );
        return;
      }
      if (!(await this.store.forges.markReported(event.run_id, null))) return;
      const { defaultBranch } = await client.repository();
      const pull = await client.openPullRequest({
        head: summary.branch,
        base: defaultBranch,
        title: await this.title(event.run_id, task.issue_number),
        body: [`Closes #${task.issue_number}.`, "", summary.final_text ?? "", "", table].join("\n"),
      });
      await this.store.forges.setPull(event.run_id, pull.number);
      await client.comment(
        { issue: task.issue_number },
        [`Opened ${client.terms.pullRef(pull.number)} from \`${summary.branch}\`.`, "", table].join("\n"),
      );
    } catch (error) {
      this.logger.warn({ run_id: event.run_id, error: String(error) }, "could not report a forge run's end");
    }
  }

  private async title(runId: string, issue: number): Promise<string> {
    const run = await this.store.runs.get(runId);
    return run?.name ?? `Issue #${issue}`;
  }

  private runLink(runId: string): string {
    return this.publicUrl ? `${this.publicUrl.replace(/\/$/, "")}/runs/${runId}` : runId;
  }
}

/** The result table of a pull request body and its comments (GitHub Markdown). */
export function resultTable(
  event: Extract<RunEvent, { type: "run.finished" }>,
  summary: AgentSummary | undefined,
  runLink: string,
): string {
  const diff = summary?.diff_stats;
  const rows: Array<[string, string]> = [
    ["agent", `${summary?.agent ?? "?"}${summary?.model ? ` (${summary.model})` : ""}`],
    ["status", event.status],
    [
      "tests",
      summary?.tests
        ? `${summary.tests.status}${summary.tests.exit_code !== null ? ` (exit ${summary.tests.exit_code})` : ""}`
        : "none",
    ],
    ["diff", diff ? `${diff.files} files, +${diff.insertions} -${diff.deletions}` : "none"],
    ["tokens", summary ? `${summary.input_tokens} in, ${summary.output_tokens} out` : "0"],
    ["cost", summary?.cost_usd !== undefined ? `$${summary.cost_usd.toFixed(4)}` : "unknown"],
    ["duration", `${((event.duration_ms ?? summary?.duration_ms ?? 0) / 1000).toFixed(1)} s`],
    ["run", runLink],
  ];
  return [
    "| | |",
    "|---|---|",
    ...rows.map(([name, value]) => `| ${name} | ${value.replaceAll("|", "\\|")} |`),
  ].join("\n");
}
