import { constants, createWriteStream, type WriteStream } from "node:fs";
import { type FileHandle, open } from "node:fs/promises";
import { join } from "node:path";
import { finished } from "node:stream/promises";
import { attemptEndedEarly } from "../core/attempt-ended-early.js";
import { stepConfinement } from "../core/confinement.js";
import { errorInfo } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import {
  isSecretName,
  SecretMasker,
  type StreamMasker,
  secretsFromEnv,
  withoutSecretNames,
} from "../core/masking.js";
import { withoutSettingNames } from "../core/setting-names.js";
import type { StepAttemptRequest, StepAttemptResult, StepOutputSink } from "../core/step-attempt.js";
import { traceEnv } from "../core/trace-context.js";
import { ExportLineReader, parseOutputFile } from "./exports.js";
import { fdPath, openHostFolder } from "./host-folder.js";
import { OutputCap } from "./output-cap.js";
import { plainCommandWords } from "./plain-command.js";
import { spawnErrorHint } from "./process/spawn-launcher.js";
import type {
  ExecAttempt,
  ExecExposure,
  ExecResult,
  Executor,
  OutputHandler,
  OutputStream,
} from "./types.js";

export interface StepAttemptOptions {
  /** Values masked in every attempt besides the request's (e.g. the runner's own token). */
  maskValues?: string[];
  /** Time between SIGTERM and SIGKILL when the attempt is stopped. */
  killGraceMs: number;
  /** Aborting cancels the attempt. */
  signal?: AbortSignal;
  /** Receives the output as it happens, masked and capped. */
  onOutput: StepOutputSink;
  /** What a sandbox shows the attempt besides its cwd (an agent's tests: their worktree is runner-made). */
  exposure?: ExecExposure;
  /** The identity of the cwd as the runner judged it (held-cwd.ts), for an executor that mounts it by path. */
  cwdIdentity?: string;
}

/** One process to run: its argv, and how an error message names it. */
interface AttemptStep {
  argv: string[];
  /** The same command without its shell, tried first (plain-command.ts). */
  plain?: string[];
  name: string;
}

/**
 * Runs one attempt of one step with `executor`: cmd.run line by line (stopping at the first
 * failure), shell.run as one script. Output is masked, capped and optionally kept in full under
 * `output_path`; exports are read from the raw output and from `$RUNYARD_OUTPUT`.
 */
export async function runStepAttempt(
  executor: Executor,
  request: StepAttemptRequest,
  options: StepAttemptOptions,
): Promise<StepAttemptResult> {
  const startedAt = performance.now();
  const shell = shellWords(request.shell);
  const scriptInline = request.action === "shell.run" && canRunInline(shell, request.script);
  const attempt = await executor.startAttempt({
    env: {
      ...request.env,
      RUNYARD_RUN_ID: request.run_id,
      RUNYARD_STEP: request.step,
      RUNYARD_HOST: request.host,
      // After the step's own env: the attempt's span is runyard's to name.
      ...traceEnv(request.trace),
    },
    cwd: request.cwd,
    files: request.action === "shell.run" && !scriptInline ? { script: request.script } : {},
    limits: { killGraceMs: options.killGraceMs },
    signal: options.signal,
    ...(options.exposure ? { exposure: options.exposure } : {}),
    ...(options.cwdIdentity ? { cwdIdentity: options.cwdIdentity } : {}),
    ...(stepConfinement.read(request) === "unconfined" ? { platform: true } : {}),
  });
  if ("problem" in attempt) {
    const error = errorInfo(attempt.code ?? "SPAWN_FAILED", attempt.problem, attempt.hint);
    return attemptEndedEarly("failed", error, Math.round(performance.now() - startedAt));
  }
  const setupMs = Math.round(performance.now() - startedAt);
  try {
    const commands: AttemptStep[] =
      request.action === "cmd.run"
        ? commandLines(request.script, shell, executor.plainCommands !== false)
        : [
            {
              // "script" is $0, the name the shell's error messages start with ("script: line 3: ...").
              argv: scriptInline
                ? [...shell, "-c", request.script, "script"]
                : [...shell, attempt.files.script!],
              name: "script",
            },
          ];
    return {
      ...(await runCommands(executor, attempt, commands, request, options, startedAt)),
      setup_ms: setupMs,
    };
  } finally {
    await attempt.dispose();
  }
}

async function runCommands(
  executor: Executor,
  attempt: ExecAttempt,
  given: AttemptStep[],
  request: StepAttemptRequest,
  options: StepAttemptOptions,
  startedAt: number,
): Promise<StepAttemptResult> {
  const secretNames = new Set(request.secret_names);
  const isSecret = (name: string) => isSecretName(name) || secretNames.has(name);
  const masker = new SecretMasker([
    ...request.secrets,
    ...(options.maskValues ?? []),
    ...executor.hostSecrets,
    ...secretsFromEnv(attempt.env, secretNames),
  ]);
  // A secret exported by this step is masked from the moment it exists: in its own
  // BOPS_EXPORT line (held back until read), and in all output after a $RUNYARD_OUTPUT write.
  // A step writes the file before it prints what follows, so checking it before each chunk of
  // output is handled is enough.
  const learnSecret = (name: string, value: string) => {
    if (isSecret(name)) masker.add([value]);
  };
  const checkOutputFile = () => {
    const text = attempt.outputFileChanged();
    if (text === undefined) return;
    for (const [name, value] of parseOutputFile(text).exports) learnSecret(name, value);
  };
  const output = new AttemptOutput(masker, new OutputCap(request.max_output_bytes), options.onOutput);
  const warnings: string[] = [];
  if (request.output_path !== undefined) {
    const problem = await output.keepFullOutput(
      request.output_path,
      fullOutputBaseName(request),
      executor.hostFolderRefusal?.bind(executor),
    );
    if (problem) warnings.push(problem);
  }
  const exportLines = request.export_vars ? new ExportLineReader(learnSecret) : undefined;

  const deadline = request.timeout_ms === undefined ? undefined : startedAt + request.timeout_ms;
  let commands = given;
  let last: ExecResult | undefined;
  let failedCommand: AttemptStep | undefined;
  let stopped: "timeout" | "canceled" | undefined;
  let memoryPeakBytes = 0;
  let cpuMs = 0;
  if (attempt.runSequence && commands.length > 0 && !options.signal?.aborted) {
    // One unit for all the lines (a pod per attempt): the deadline is the attempt's.
    const timeoutMs =
      deadline === undefined ? undefined : Math.max(1, Math.ceil(deadline - performance.now()));
    const onOutput: OutputHandler = (stream, data) => {
      output.write(stream, stream === "stdout" && exportLines ? exportLines.push(data) : data);
    };
    last = await attempt.runSequence(
      commands.map((command) => command.argv),
      { timeoutMs, onOutput },
    );
    if (exportLines) output.write("stdout", exportLines.end());
    memoryPeakBytes = last.memoryPeakBytes;
    cpuMs = last.cpuMs;
    if (last.status !== "success") {
      const failedIndex = (last as { failedIndex?: number }).failedIndex;
      failedCommand = failedIndex === undefined ? undefined : commands[failedIndex];
    }
    commands = [];
  }
  for (const command of commands) {
    if (options.signal?.aborted) {
      stopped = "canceled";
      break;
    }
    const timeoutMs = deadline === undefined ? undefined : Math.ceil(deadline - performance.now());
    if (timeoutMs !== undefined && timeoutMs <= 0) {
      stopped = "timeout";
      break;
    }
    const onOutput: OutputHandler = (stream, data) => {
      checkOutputFile();
      output.write(stream, stream === "stdout" && exportLines ? exportLines.push(data) : data);
    };
    last = command.plain ? await attempt.run({ argv: command.plain, timeoutMs, onOutput }) : undefined;
    // A plain command that cannot start goes to the shell, which says why in its own words.
    if (!last || last.spawnError !== undefined)
      last = await attempt.run({ argv: command.argv, timeoutMs, onOutput });
    if (exportLines) output.write("stdout", exportLines.end()); // a command's output ending ends its last line
    memoryPeakBytes = Math.max(memoryPeakBytes, last.memoryPeakBytes);
    cpuMs += last.cpuMs;
    if (last.status !== "success") {
      failedCommand = command;
      break;
    }
  }
  warnings.push(...(await output.close()));

  const exports = new Map<string, string>();
  if (exportLines) {
    for (const [name, value] of exportLines.exports) exports.set(name, value);
    warnings.push(...exportLines.warnings);
  }
  const fromFile = await readOutputFile(attempt);
  for (const [name, value] of fromFile.exports) exports.set(name, value);
  warnings.push(...fromFile.warnings);
  for (const [name, value] of exports) learnSecret(name, value);
  // Names are never masked where they are shown, so one that holds a secret is not kept at all.
  const named = withoutSecretNames(Object.fromEntries(exports), masker);
  warnings.push(...named.refused);
  // Nor is one under a setting's name: what a step prints may come from anywhere.
  const unset = withoutSettingNames(named.kept);
  warnings.push(...unset.refused);
  const tooLarge = [...(exportLines?.tooLarge ?? []), ...fromFile.tooLarge];

  let status = stopped ?? last?.status ?? "success";
  let error = attemptError(status, last, failedCommand, request.timeout_ms);
  if (status === "success" && tooLarge.length > 0) {
    status = "failed";
    error = errorInfo(
      "EXPORT_TOO_LARGE",
      `exported ${[...new Set(tooLarge)].join(", ")}: a value over the 1 MiB cap of one exported value`,
    );
  }
  return {
    status,
    exit_code: attemptExitCode(status, last, stopped !== undefined),
    exports: unset.kept,
    secret_exports: Object.entries(unset.kept)
      .filter(([name, value]) => isSecret(name) || masker.mask(value) !== value)
      .map(([name]) => name),
    duration_ms: Math.round(performance.now() - startedAt),
    memory_peak_bytes: memoryPeakBytes,
    cpu_ms: cpuMs,
    output_files: output.files,
    warnings: warnings.map((warning) => masker.mask(warning)),
    ...(error ? { error: { ...error, message: masker.mask(error.message) } } : {}),
  };
}

/** cmd.run: every line that is not blank or a comment, each in its own shell. */
function commandLines(script: string, shell: string[], plainCommands: boolean): AttemptStep[] {
  const commands: AttemptStep[] = [];
  script.split("\n").forEach((raw, index) => {
    const line = raw.endsWith("\r") ? raw.slice(0, -1) : raw;
    const trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const plain = plainCommands ? plainCommandWords(line, shell) : undefined;
    commands.push({
      argv: [...shell, "-c", line],
      ...(plain ? { plain } : {}),
      name: `line ${index + 1} ${quoteCommand(trimmed)}`,
    });
  });
  return commands;
}

/**
 * shell.run runs the script with `-c` where the shell is one known to take it that way: no file
 * to write, read and remove. A script too long for one argument (the kernel caps each at 128
 * KiB) goes to a file, and so does any script for another interpreter (`node -c` checks syntax).
 */
function canRunInline(shell: string[], script: string): boolean {
  const program = shell[0]?.split("/").pop() ?? "";
  return INLINE_SHELLS.has(program) && script.length <= MAX_INLINE_SCRIPT && !script.includes("\0");
}

const INLINE_SHELLS = new Set(["bash", "sh", "dash", "zsh", "ksh", "ash"]);
/** In UTF-16 code units, so at most 3 bytes each: under the 128 KiB per argument. */
const MAX_INLINE_SCRIPT = 40_000;

function shellWords(shell: string): string[] {
  const words = shell.trim().split(/\s+/).filter(Boolean);
  return words.length > 0 ? words : ["bash"];
}

function quoteCommand(command: string): string {
  return JSON.stringify(command.length > 80 ? `${command.slice(0, 80)}...` : command);
}

function attemptExitCode(
  status: StepAttemptResult["status"],
  last: ExecResult | undefined,
  stoppedBetweenLines: boolean,
): number | null {
  // Stopped between two lines: no line's exit code says how the attempt ended.
  if (stoppedBetweenLines) return null;
  if (last) return last.exitCode;
  return status === "success" ? 0 : null; // nothing to run
}

function attemptError(
  status: StepAttemptResult["status"],
  last: ExecResult | undefined,
  failedCommand: AttemptStep | undefined,
  timeoutMs: number | undefined,
): ErrorInfo | undefined {
  switch (status) {
    case "success":
      return undefined;
    case "timeout":
      return errorInfo("TIMEOUT", `step timed out after ${(timeoutMs ?? 0) / 1000}s`);
    case "canceled":
      return errorInfo("CANCELED", "step was canceled");
    case "failed": {
      if (last?.spawnError !== undefined)
        return errorInfo("SPAWN_FAILED", last.spawnError, spawnErrorHint(last.spawnError));
      const name = failedCommand?.name ?? "step";
      const how =
        last?.exitCode !== null && last?.exitCode !== undefined
          ? `exited with code ${last.exitCode}`
          : `was killed by ${last?.signal ?? "a signal"}`;
      return errorInfo("STEP_FAILED", `${name} ${how}`);
    }
    default: {
      const unknown: never = status;
      throw new Error(`unknown step status ${String(unknown)}`);
    }
  }
}

async function readOutputFile(attempt: ExecAttempt): Promise<ReturnType<typeof parseOutputFile>> {
  const contents = await attempt.readOutputFile();
  if ("problem" in contents) return { exports: new Map(), warnings: [contents.problem], tooLarge: [] };
  return parseOutputFile(contents.text);
}

/** `<run>-<step>-<host>`, with `.attemptN` for retries, in characters safe for any file system. */
function fullOutputBaseName(request: StepAttemptRequest): string {
  const base = [request.run_id, request.step, request.host]
    .map((part) => part.replace(/[^A-Za-z0-9._-]/g, "_"))
    .join("-");
  return request.attempt > 1 ? `${base}.attempt${request.attempt}` : base;
}

/** Opens a file to write it anew, refusing a link in its place (ELOOP). */
const NO_FOLLOW_WRITE = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW;

/**
 * Where an attempt's output goes: masked per stream, kept in full in files when asked,
 * capped on its way to the sink; at the end the maskers are flushed and the cap marker sent.
 */
class AttemptOutput {
  readonly files: string[] = [];
  private readonly maskers: Record<OutputStream, StreamMasker>;
  private fileStreams: Record<OutputStream, WriteStream> | undefined;
  private readonly problems: string[] = [];
  private stderrAtLineStart = true;

  constructor(
    masker: SecretMasker,
    private readonly cap: OutputCap,
    private readonly sink: StepOutputSink,
  ) {
    this.maskers = { stdout: masker.stream(), stderr: masker.stream() };
  }

  /**
   * Opens `<folder>/<base>.stdout.log` and `.stderr.log`; returns a warning when it cannot. The
   * folder may be one the run's steps write (a cwd): it is opened part by part through
   * descriptors, each part's real place judged by `refusal` (host-folder.ts), and the files made
   * through the folder's descriptor, so a link a step swaps in on the way leads the runner,
   * outside the sandbox, nowhere else.
   */
  async keepFullOutput(
    folder: string,
    base: string,
    refusal?: (realFolder: string) => string | undefined,
  ): Promise<string | undefined> {
    let dir: FileHandle;
    try {
      dir = await openHostFolder(folder, refusal);
    } catch (error) {
      return `cannot keep the full output in ${folder}: ${(error as Error).message}`;
    }
    const opened: FileHandle[] = [];
    try {
      for (const stream of ["stdout", "stderr"] as const) {
        const name = `${base}.${stream}.log`;
        // Not through a link: a link a step left at this name would have the runner write
        // wherever it leads.
        const file = await open(`${fdPath(dir)}/${name}`, NO_FOLLOW_WRITE, 0o600).catch(
          (error: NodeJS.ErrnoException) => {
            const why =
              error.code === "ELOOP"
                ? "ELOOP (a link is in its place; the runner writes through none)"
                : error.message;
            throw new Error(`cannot write ${join(folder, name)}: ${why}`);
          },
        );
        opened.push(file);
      }
    } catch (error) {
      await Promise.all(opened.map((file) => file.close()));
      return (error as Error).message;
    } finally {
      await dir.close();
    }
    const stream = (file: FileHandle, name: OutputStream) => {
      const path = join(folder, `${base}.${name}.log`);
      this.files.push(path);
      const writer = createWriteStream(path, { fd: file });
      writer.on("error", (error) => this.problems.push(`cannot write ${path}: ${error.message}`));
      return writer;
    };
    this.fileStreams = { stdout: stream(opened[0]!, "stdout"), stderr: stream(opened[1]!, "stderr") };
    return undefined;
  }

  write(stream: OutputStream, raw: string): void {
    this.emit(stream, this.maskers[stream].push(raw));
  }

  /** Flushes, sends the cap marker, closes the files; returns the problems met on the way. */
  async close(): Promise<string[]> {
    this.emit("stdout", this.maskers.stdout.flush());
    this.emit("stderr", this.maskers.stderr.flush());
    const marker = this.cap.marker(this.files);
    if (marker) this.sink("stderr", this.stderrAtLineStart ? marker : `\n${marker}`);
    if (this.fileStreams) {
      const files = Object.values(this.fileStreams);
      for (const file of files) file.end();
      await Promise.all(files.map((file) => finished(file).catch(() => {})));
    }
    return this.problems;
  }

  private emit(stream: OutputStream, masked: string): void {
    if (!masked) return;
    this.fileStreams?.[stream].write(masked);
    const shown = this.cap.admit(masked);
    if (!shown) return;
    if (stream === "stderr") this.stderrAtLineStart = shown.endsWith("\n");
    this.sink(stream, shown);
  }
}
