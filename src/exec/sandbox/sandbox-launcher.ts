import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join, resolve } from "node:path";
import { cwdCheckArgv, holdCwd } from "../held-cwd.js";
import { type ExecRequest, type ExecResult, notStarted, type ProcessLauncher } from "../types.js";
import { RunCgroup } from "./run-cgroup.js";
import type { Sandbox } from "./sandbox.js";

/**
 * Starts every command through `launcher` inside `sandbox`: the sandbox is only a prefix of
 * the argv, so both launchers (the fork-server and plain spawn) keep their process groups,
 * timeouts, cancel and exact figures; the group's leader is bwrap.
 *
 * A program that is not found is reported before bwrap starts, as the launchers report it
 * (a `spawnError`), so that a plain cmd.run line falls back to its shell as it does unsandboxed.
 */
export class SandboxLauncher implements ProcessLauncher {
  constructor(
    private readonly launcher: ProcessLauncher,
    private readonly sandbox: Sandbox,
  ) {}

  async run(request: ExecRequest): Promise<ExecResult> {
    const startedAt = performance.now();
    const program = request.argv[0];
    if (!program) return this.launcher.run(request);
    // Judged and bound by where it leads: a step could make a link to a hidden folder and name it as the cwd of the next.
    const held = holdCwd(request.cwd ?? process.cwd());
    if ("problem" in held) return notStarted(startedAt, "failed", held.problem);
    const cwd = held.path;
    const exposure = { ...request.exposure, cwd, home: request.env.HOME };
    const refusal = this.sandbox.refusal(exposure) ?? exposure.cwdCheck?.(cwd);
    if (refusal) return notStarted(startedAt, "failed", refusal);
    const missing = missingProgram(program, request.env.PATH, cwd);
    if (missing) return notStarted(startedAt, "failed", missing);
    // The run's sandbox, where it can take the command: a fork there, not a sandbox of its own.
    const entered = await exposure.runSandbox?.run({ ...request, cwd }, this.launcher);
    if (entered) return entered;
    // Mounted by path: checked inside to be the folder judged here (held-cwd.ts).
    const checked = cwdCheckArgv(request.argv, held.identity);
    const argv = this.sandbox.command(checked.argv, exposure, checked.files);
    const limit = this.sandbox.options.pids;
    if (!limit) return this.launcher.run({ ...request, cwd, argv });
    // A sandbox of its own is held to the run's limit too, in a cgroup of its own: a shell on the
    // host moves itself there, then becomes bwrap, before anything of the command runs.
    const cgroup = await RunCgroup.make(limit.hierarchy, limit.max);
    if (!(cgroup instanceof RunCgroup)) return notStarted(startedAt, "failed", cgroup.problem);
    try {
      return await this.launcher.run({
        ...request,
        cwd,
        argv: ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', cgroup.procsFile, ...argv],
      });
    } finally {
      await cgroup.remove();
    }
  }

  get entersSandboxes(): boolean {
    return this.launcher.entersSandboxes === true;
  }

  close(): Promise<void> {
    return this.launcher.close();
  }
}

/** Why `program` cannot start, looked up as execvp would (PATH, or a path from `cwd`). */
function missingProgram(program: string, path: string | undefined, cwd: string): string | undefined {
  if (program.includes("/")) {
    return isExecutable(resolve(cwd, program)) ? undefined : `cannot start "${program}": no such file`;
  }
  const folders = (path ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter);
  if (folders.some((folder) => isExecutable(join(resolve(cwd, folder || "."), program)))) return undefined;
  return `cannot start "${program}": not found in PATH`;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
}
