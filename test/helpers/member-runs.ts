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

/**
 * A step's command that exchanges `dir` with `link` (renameat2 RENAME_EXCHANGE, atomic) as fast as
 * it can for `seconds`, after making `swapper-ready` in its folder; it prints `swaps=N`. With
 * `stopFile`, it stops as soon as that file exists (looked for every 1,000 swaps): the victim says
 * its attempts are over, and the racer burns no more CPU. The arguments are shell words.
 */
export function swapCommand(dir: string, link: string, seconds: number, stopFile?: string): string {
  const swap = [
    "use strict;",
    "my ($dir, $link, $seconds, $stop) = @ARGV;",
    "my $end = time + $seconds; my $swaps = 0; my $tries = 0;",
    'open(my $ready, ">", "swapper-ready"); close($ready);',
    "while (time < $end) {",
    "$swaps++ if syscall(316, -100, $dir, -100, $link, 2) == 0;",
    "last if defined $stop && ++$tries % 1000 == 0 && -e $stop; }",
    'print "swaps=$swaps\\n";',
  ].join(" ");
  return `perl -e '${swap}' ${dir} ${link} ${seconds}${stopFile === undefined ? "" : ` ${stopFile}`}`;
}
