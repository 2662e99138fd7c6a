import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { until } from "./processes.js";
import { api, readEvents } from "./server.js";

/** One step of a workflow a member submits (see `memberWorkflow`). */
export interface MemberStep {
  name: string;
  /** A shell.run script; `cmd` makes it a cmd.run step instead. */
  script?: string;
  cmd?: string;
  cwd?: string;
  depends?: string[];
  env?: Record<string, string>;
  outputPath?: string;
  /** The steps after it run even if it fails. */
  continueOnError?: boolean;
}

/** A workflow of `steps` on the local runner, in file order unless they name `depends`. */
export function memberWorkflow(steps: MemberStep[], name = "member"): string {
  const lines = ["version: v0.1", `name: ${name}`, "inventory:", "  hosts:", "    local: {}", "steps:"];
  for (const step of steps) {
    lines.push(`  - name: ${step.name}`, "    targets: [local]");
    if (step.depends) lines.push(`    depends: [${step.depends.join(", ")}]`);
    if (step.continueOnError) lines.push("    continue_on_error: true");
    lines.push(`    action: ${step.cmd !== undefined ? "cmd.run" : "shell.run"}`, "    args:");
    if (step.cwd) lines.push(`      cwd: ${step.cwd}`);
    if (step.outputPath) lines.push(`      output_path: ${step.outputPath}`);
    if (step.env) {
      lines.push("      env:");
      for (const [key, value] of Object.entries(step.env)) lines.push(`        ${key}: "${value}"`);
    }
    const body = step.cmd ?? step.script ?? "";
    lines.push(
      `      ${step.cmd !== undefined ? "cmd" : "script"}: |`,
      ...body.split("\n").map((each) => `        ${each}`),
    );
  }
  return `${lines.join("\n")}\n`;
}

/** Submits `yaml` with `token`; throws unless the server stored a run. */
export async function submitWorkflow(url: string, yaml: string, token: string): Promise<string> {
  const { status, body } = await api<{ run_id: string }>(
    url,
    "POST",
    "/api/runs",
    { kind: "workflow", workflow: yaml, vars: {} },
    token,
  );
  if (status !== 201) throw new Error(`submit failed: ${status} ${JSON.stringify(body)}`);
  return body.run_id;
}

/** Whether a run has ended, either way. */
export const runEnded = (view: { status: string }) => view.status === "success" || view.status === "failed";

/** Everything a run's steps printed, in order. */
export async function runOutput(url: string, runId: string): Promise<string> {
  const events = await readEvents(url, runId);
  return events.flatMap((event) => (event.type === "step.output" ? [event.data] : [])).join("");
}

/** The value of the line `key=value` in `output`. */
export function outputLine(output: string, key: string): string | undefined {
  return output
    .split("\n")
    .find((each) => each.startsWith(`${key}=`))
    ?.slice(key.length + 1);
}

/** The run's own folder on the host (its steps' cwd) under a runner home `home`, once the runner has made it. */
export async function runFolderOf(home: string, runId: string): Promise<string> {
  let found: string | undefined;
  await until(
    `run ${runId}'s folder is made`,
    () => {
      const workspaces = join(home, "workspaces");
      const runners = existsSync(workspaces) ? readdirSync(workspaces) : [];
      found = runners
        .map((runner) => join(workspaces, runner, "runs", runId))
        .find((path) => existsSync(path));
      return found !== undefined;
    },
    120_000,
  );
  return found!;
}
