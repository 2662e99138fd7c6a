import { lstatSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { runEnvBase, withoutCredentials } from "../../core/config-env.js";
import { secretsFromEnv } from "../../core/masking.js";
import { OutputFileWatch } from "../output-file.js";
import { ExitRemovedFolders, removeTree } from "../remove-tree.js";
import type { Sandbox } from "../sandbox/sandbox.js";
import { SandboxLauncher } from "../sandbox/sandbox-launcher.js";
import type {
  AttemptCommand,
  AttemptSetup,
  ExecAttempt,
  ExecExposure,
  ExecRequest,
  ExecResult,
  Executor,
  OutputFileContents,
  ProcessLauncher,
} from "../types.js";

export interface ProcessExecutorOptions {
  /** The host's environment; runyard's own credentials are taken out of it (and masked). */
  baseEnv: Record<string, string | undefined>;
  /** Where the executor's private scratch folder goes; the OS temp folder by default. */
  tmpDir?: string;
  /** Runs every command inside this sandbox (sandbox.ts); none by default. */
  sandbox?: Sandbox;
  /**
   * Sandboxed: the names of `baseEnv` that platform runs' attempts get besides the allowlist
   * (`step_pass_env`); a member's get none of them.
   */
  passEnv?: readonly string[];
}

/**
 * Runs attempts as process groups on this machine, through the fork-server (or plain spawn).
 *
 * Scratch files live in one private (0700) folder per executor: `$RUNYARD_OUTPUT` is a path there
 * that nothing creates unless the step writes it, so a step that exports nothing costs no file (a
 * create, stat and unlink were a measurable part of a trivial step). Being private is what makes a
 * path the step creates itself safe. Sandboxed, each attempt gets a subfolder, the only part its
 * commands see (a mkdir and rmdir per attempt).
 *
 * Sandboxed, the env starts from a short allowlist of the host's (runEnvBase): a shared runner's
 * env holds its operator's keys; platform runs also get `passEnv`. Unsandboxed (one owner,
 * `runyard run`), the host's whole env less runyard's own credentials.
 */
export class ProcessExecutor implements Executor {
  readonly hostSecrets: readonly string[];
  private readonly baseEnv: Record<string, string>;
  /** Sandboxed: what a platform run's attempts start from (the allowlist and `passEnv`). */
  private readonly platformEnv: Record<string, string>;
  private readonly launcher: ProcessLauncher;
  private scratchDir: string | undefined;
  private attempts = 0;

  constructor(
    private readonly rawLauncher: ProcessLauncher,
    private readonly options: ProcessExecutorOptions,
  ) {
    this.launcher = options.sandbox ? new SandboxLauncher(rawLauncher, options.sandbox) : rawLauncher;
    if (options.sandbox) {
      const home = options.baseEnv.HOME || homedir();
      this.baseEnv = runEnvBase(options.baseEnv, [], home);
      this.platformEnv = runEnvBase(options.baseEnv, options.passEnv ?? [], home);
    } else {
      this.baseEnv = withoutCredentials(options.baseEnv);
      this.platformEnv = this.baseEnv;
    }
    this.hostSecrets = secretsFromEnv(options.baseEnv);
  }

  /** Whether its commands run in a sandbox (and start from the allowlist of the host's env). */
  get sandboxed(): boolean {
    return this.options.sandbox !== undefined;
  }

  hostFolderRefusal(folder: string): string | undefined {
    return this.options.sandbox?.hostFolderRefusal(folder);
  }

  cwdRefusal(cwd: string, exposure?: ExecExposure): string | undefined {
    const sandbox = this.options.sandbox;
    return sandbox?.refusal({ ...exposure, cwd: sandbox.realPath(cwd) });
  }

  /** The launcher that makes and enters runs' sandboxes (run-sandbox.ts): the fork-server, unwrapped. */
  get sandboxLauncher(): ProcessLauncher {
    return this.rawLauncher;
  }

  /** Runs one process outside any attempt: the launcher's contract, as tests and benchmarks use it. */
  run(request: ExecRequest): Promise<ExecResult> {
    return this.launcher.run(request);
  }

  async startAttempt(setup: AttemptSetup): Promise<ExecAttempt | { problem: string }> {
    let dir: string;
    try {
      dir = this.privateFolder();
    } catch (error) {
      return { problem: `cannot create the scratch folder: ${(error as Error).message}` };
    }
    const runScratch = this.options.sandbox ? setup.exposure?.scratchDir : undefined;
    if (runScratch) return this.startRunAttempt(setup, runScratch);
    const attemptDir = this.options.sandbox ? join(dir, String(++this.attempts)) : undefined;
    if (attemptDir) {
      try {
        await mkdir(attemptDir, { mode: 0o700 });
      } catch (error) {
        return { problem: `cannot create the attempt's scratch folder: ${(error as Error).message}` };
      }
    }
    const prefix = attemptDir ? join(attemptDir, "step") : join(dir, String(++this.attempts));
    const written = await writeAttemptFiles(setup.files, (name) => `${prefix}.${name}`);
    if ("problem" in written) return written;
    const { files } = written;
    const env = this.attemptEnv(setup, `${prefix}.output`);
    const shown = attemptDir ? { writable: [attemptDir] } : undefined;
    return new ProcessAttempt(this.launcher, setup, env, files, shown, () =>
      disposeAttempt(attemptDir, env, files),
    );
  }

  /**
   * An attempt of a run that has scratch folders of its own (RunFolders): its files (shell.run's
   * script) in the run's `scripts` folder, which the run's commands see read-only, and
   * `$RUNYARD_OUTPUT` in its `outputs` folder, where the runner makes nothing. The runner writes
   * only where no command of the run can write, so a command of the run beside this one cannot
   * swap a folder of it for a link to one of the host's while the runner writes there.
   */
  private async startRunAttempt(
    setup: AttemptSetup,
    scratch: string,
  ): Promise<ExecAttempt | { problem: string }> {
    const attempt = String(++this.attempts);
    const scripts = join(scratch, "scripts");
    const outputs = join(scratch, "outputs");
    const written = await writeAttemptFiles(setup.files, (name) => join(scripts, `${attempt}.${name}`));
    if ("problem" in written) return written;
    const { files } = written;
    const env = this.attemptEnv(setup, join(outputs, `${attempt}.output`));
    const shown = { writable: [outputs], readable: [scripts] };
    return new ProcessAttempt(this.launcher, setup, env, files, shown, () =>
      disposeAttempt(undefined, env, files),
    );
  }

  /**
   * An attempt's whole environment. PWD names the folder the commands start in, as a shell would
   * set it: a command run without a shell (plain-command.ts) must not see the runner's own.
   */
  private attemptEnv(setup: AttemptSetup, output: string): Record<string, string> {
    return {
      ...(setup.platform ? this.platformEnv : this.baseEnv),
      PWD: resolve(setup.cwd ?? process.cwd()),
      ...setup.env,
      RUNYARD_OUTPUT: output,
    };
  }

  /** As Executor's close; resolves once the launcher's helper (the fork-server) has exited. */
  close(): Promise<void> {
    const exited = this.launcher.close();
    if (this.scratchDir) scratchFolders.remove(this.scratchDir);
    this.scratchDir = undefined;
    return exited;
  }

  private privateFolder(): string {
    if (this.scratchDir) return this.scratchDir;
    this.scratchDir = scratchFolders.make(this.options.tmpDir ?? tmpdir(), "runyard-");
    return this.scratchDir;
  }
}

class ProcessAttempt implements ExecAttempt {
  private readonly outputWatch: OutputFileWatch;

  constructor(
    private readonly launcher: ProcessLauncher,
    private readonly setup: AttemptSetup,
    readonly env: Record<string, string>,
    readonly files: Record<string, string>,
    /** The attempt's scratch folders a sandbox shows, when sandboxed. */
    private readonly shown: { writable: string[]; readable?: string[] } | undefined,
    readonly dispose: () => Promise<void>,
  ) {
    this.outputWatch = new OutputFileWatch(env.RUNYARD_OUTPUT!);
  }

  run(command: AttemptCommand): Promise<ExecResult> {
    const exposure = this.setup.exposure;
    return this.launcher.run({
      argv: command.argv,
      env: this.env,
      cwd: this.setup.cwd,
      ...(this.shown
        ? {
            exposure: {
              ...exposure,
              writable: [...this.shown.writable, ...(exposure?.writable ?? [])],
              readable: [...(this.shown.readable ?? []), ...(exposure?.readable ?? [])],
            },
          }
        : {}),
      timeoutMs: command.timeoutMs,
      signal: this.setup.signal,
      killGraceMs: this.setup.limits.killGraceMs,
      onOutput: command.onOutput,
    });
  }

  outputFileChanged(): string | undefined {
    return this.outputWatch.changed();
  }

  readOutputFile(): Promise<OutputFileContents> {
    return this.outputWatch.read();
  }
}

/** Writes an attempt's files (never over one that exists), each at `pathOf(name)`; their paths by name. */
async function writeAttemptFiles(
  contents: Record<string, string> | undefined,
  pathOf: (name: string) => string,
): Promise<{ files: Record<string, string> } | { problem: string }> {
  const files: Record<string, string> = {};
  for (const [name, content] of Object.entries(contents ?? {})) {
    const path = pathOf(name);
    try {
      await writeFile(path, content, { flag: "wx", mode: 0o600 });
    } catch (error) {
      return { problem: `cannot write the step's ${name} file: ${(error as Error).message}` };
    }
    files[name] = path;
  }
  return { files };
}

/** Removes what an attempt created: its own folder, or its files (links removed, not followed). */
async function disposeAttempt(
  attemptDir: string | undefined,
  env: Record<string, string>,
  files: Record<string, string>,
): Promise<void> {
  // Other steps of the run may still write beside what this one made: removed without following
  // a link they swap in (remove-tree.ts).
  if (attemptDir) {
    await removeTree(attemptDir);
    return;
  }
  for (const file of [env.RUNYARD_OUTPUT!, ...Object.values(files)]) {
    // Most steps never write $RUNYARD_OUTPUT: asked first, an absent file costs no thrown
    // error (with its stack) per step. A link is removed, not followed.
    const entry = lstatSync(file, { throwIfNoEntry: false });
    if (entry) await removeTree(file); // the step may have put a folder in its place
  }
}

/** Scratch folders of executors not closed yet. */
const scratchFolders = new ExitRemovedFolders();
