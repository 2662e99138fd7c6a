import { type ChildProcessByStdio, spawn } from "node:child_process";
import { closeSync, constants as fileConstants, openSync } from "node:fs";
import { Socket, type SocketConstructorOpts } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable, Writable } from "node:stream";
import { OutputDecoder } from "../output-decoder.js";
import { ExitRemovedFolders } from "../remove-tree.js";
import { groupIsAlive, signalGroup } from "../resources.js";
import type {
  ExecRequest,
  ExecResult,
  OutputStream,
  ProcessGroupWatch,
  ProcessLauncher,
  SandboxToEnter,
} from "../types.js";
import { notStarted, RUN_FOLDERS_NOT_ATTACHED } from "../types.js";
import {
  closeMessage,
  decodeWaitStatus,
  EventParser,
  errnoNames,
  pipeMessage,
  sandboxMessage,
  startMessage,
} from "./fork-server-wire.js";
import { describeSpawnError, killedBeforeStart, startProblem, stoppedBeforeStart } from "./spawn-launcher.js";

/** How often the group is checked for survivors while it gets its SIGTERM grace. */
const GROUP_POLL_MS = 50;
/**
 * How long a group still alive at its leader's exit may empty by itself before /proc is scanned
 * (every process's stat: ~3 ms with 100 processes). A sandboxed step's leader, bwrap, exits just
 * before its namespace's pid 1; the helper's 'd' (group empty) comes within 1-2 ms, before any scan.
 */
const GROUP_SETTLE_MS = 10;
/** How long the pipes may stay quiet after the group is gone: a setsid process may still hold them. */
const PIPE_DRAIN_MS = 250;
/**
 * The largest output chunk handed on. Each chunk is one event, held by the runner (stored and sent
 * by the server) whole: 64 KiB keeps those buffers as with Node's own pipe reads.
 */
const MAX_CHUNK_BYTES = 64 * 1024;
/**
 * One reused buffer for the helper's event pipe (a FIFO of 1 MiB where the kernel allows): up to
 * a megabyte a read, where Node reads its stdout socket 64 KiB at a time, each into a new buffer.
 */
const EVENT_PIPE_READ_BYTES = 1024 * 1024;

type Helper = ChildProcessByStdio<Writable, Readable, null>;

/**
 * Starts step processes through the fork-server (native/fork-server.c), a small resident C
 * process: Node's spawn forks all of Node (~2.6 ms a step on 2 cores, most of a trivial step's
 * cost), the helper ~0.1 ms. It starts each command as session and group leader, stops its groups
 * when this process dies (stdin ends; also a parent-death signal), relays output in large chunks
 * over one pipe, and reports exact wait4 figures (CPU, peak RSS). Timeouts, cancel and survivors
 * are handled here as in spawn-launcher.ts: SIGTERM to the group, SIGKILL after the grace.
 *
 * Events come on the helper's stdout until it has made its event pipe, a FIFO in a private folder
 * made here (answer 'p', not 'r'); this process opens it and says so ('P'). Nothing is sent before
 * the first answer, so no command has one event on stdout and the next on the pipe.
 *
 * If the helper fails to start or dies, commands not yet started, and all later ones, go to
 * `fallback` (plain spawn).
 */
export class ForkServerLauncher implements ProcessLauncher {
  private readonly helper: Helper;
  private readonly commands = new Map<number, Command>();
  /** Sandbox ops ('O', 'D') waiting for their answer, by id. */
  private readonly doorAnswers = new Map<number, (errno: number) => void>();
  private readonly parser: EventParser;
  private readonly watch: ProcessGroupWatch | undefined;
  private nextId = 1;
  private broken = false;
  private readonly exited: Promise<void>;
  /** The private folder of the helper's event pipe, until the helper has answered. */
  private pipeFolder: string | undefined;
  private eventPipe: Socket | undefined;
  /** Messages for the helper held until its first answer ('r' or 'p'); undefined once sent. */
  private held: Buffer[] | undefined = [];
  /** While a read of the event pipe is parsed: its buffer is read into again afterwards. */
  private readingPipe = false;

  constructor(
    helperPath: string,
    private readonly fallback: ProcessLauncher,
    options: { killGraceMs: number; watch?: ProcessGroupWatch; onBroken?: (reason: string) => void },
  ) {
    this.watch = options.watch;
    this.pipeFolder = privateFolder();
    // detached: a terminal's Ctrl-C reaches the runner, which cancels its steps, not the helper.
    const args = [String(options.killGraceMs)];
    if (this.pipeFolder) args.push(join(this.pipeFolder, "events"));
    this.helper = spawn(helperPath, args, { detached: true, stdio: ["pipe", "pipe", "inherit"] });
    const breaks = (reason: string) => {
      if (this.broken) return;
      this.broken = true;
      options.onBroken?.(reason);
      this.abandon(reason);
    };
    this.helper.on("error", (error) => breaks(`the fork-server could not start: ${error.message}`));
    this.helper.on("exit", (code, signal) => breaks(`the fork-server exited (${signal ?? `code ${code}`})`));
    this.exited = new Promise((resolve) => {
      this.helper.once("exit", () => resolve());
      this.helper.once("error", () => resolve());
    });
    // The helper removes the folder once it has opened the pipe; not when it never did.
    this.exited.then(() => this.removePipeFolder());
    this.helper.stdin.on("error", () => {}); // its end is reported by "exit"
    this.parser = new EventParser(this);
    this.helper.stdout.on("data", (chunk: Buffer) => this.parser.push(chunk));
    this.helper.unref();
    this.refresh();
  }

  get entersSandboxes(): boolean {
    return !this.broken;
  }

  run(request: ExecRequest): Promise<ExecResult> {
    const startedAt = performance.now();
    // Plain spawn cannot join a sandbox's namespaces: the command must not run outside it.
    if (this.broken && (request.enter !== undefined || request.clone !== undefined))
      return Promise.resolve(
        notStarted(startedAt, "failed", "the run's sandbox is gone with the fork-server"),
      );
    if (this.broken) return this.fallback.run(request);
    if (request.signal?.aborted) return Promise.resolve(notStarted(startedAt, "canceled"));
    // An entering command's cwd is a path of its sandbox, checked there (the helper's 'f').
    const problem =
      (request.enter === undefined && request.clone === undefined ? startProblem(request) : undefined) ??
      nulProblem(request);
    if (problem) return Promise.resolve(notStarted(startedAt, "failed", problem));
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.commands.set(id, new Command(id, request, startedAt, this, resolve));
      this.write(startMessage(id, request));
      this.refresh();
    });
  }

  private write(message: Buffer): void {
    if (this.held) this.held.push(message);
    else this.helper.stdin.write(message);
  }

  /** The helper's first answer: 'p' when it made its event pipe, 'r' when it did not. */
  private helperReady(type: string): void {
    if (!this.held) return;
    const folder = this.pipeFolder;
    this.pipeFolder = undefined;
    // The helper removes the folder once it has opened the pipe.
    if (type === "p" && folder && this.openEventPipe(join(folder, "events"))) pipeFolders.forget(folder);
    else if (folder) pipeFolders.remove(folder);
    const held = this.held;
    this.held = undefined;
    for (const message of held) this.helper.stdin.write(message);
  }

  /** Opens the helper's event pipe and tells the helper to send its events there; false when it cannot. */
  private openEventPipe(path: string): boolean {
    const parser = new EventParser(this);
    const onread = {
      buffer: Buffer.allocUnsafe(EVENT_PIPE_READ_BYTES),
      callback: (length: number, buffer: Uint8Array): void => {
        // The pieces of a read are handed on before its buffer is read into again.
        this.readingPipe = true;
        try {
          parser.push(Buffer.from(buffer.buffer, buffer.byteOffset, length));
          this.flushOutput();
        } finally {
          this.readingPipe = false;
        }
      },
    };
    let fd: number | undefined;
    try {
      fd = openSync(path, fileConstants.O_RDONLY | fileConstants.O_NONBLOCK);
      // `onread` (reads into one buffer of the caller's) is Node's since 12; @types/node's
      // constructor options leave it out.
      this.eventPipe = new Socket({ fd, readable: true, writable: false, onread } as SocketConstructorOpts);
    } catch {
      if (fd !== undefined) closeSync(fd);
      return false; // the helper's events stay on its stdout
    }
    this.eventPipe.on("error", () => {}); // the helper's end is reported by "exit"
    this.helper.stdin.write(pipeMessage());
    this.refresh();
    return true;
  }

  private removePipeFolder(): void {
    if (this.pipeFolder) pipeFolders.remove(this.pipeFolder);
    this.pipeFolder = undefined;
  }

  /**
   * Ends the helper's stdin: it stops the groups still running (SIGTERM, SIGKILL after the grace)
   * and exits. Referenced again meanwhile, so Node waits for it rather than outliving it.
   */
  close(): Promise<void> {
    this.broken = true; // its exit is no news now
    if (this.helper.exitCode === null && this.helper.signalCode === null) this.helper.ref();
    for (const message of this.held ?? []) this.helper.stdin.write(message);
    this.held = undefined;
    this.helper.stdin.end();
    return this.exited;
  }

  /** Opens or ends the door of `sandbox` (native/sandbox-entry.c; 'O' and 'D'). */
  sandboxDoor(sandbox: SandboxToEnter, action: "open" | "done"): Promise<string | undefined> {
    return this.ask(action === "open" ? "O" : "D", sandbox);
  }

  /** Sends a sandbox's op; resolves to why it failed (its errno's name), or undefined. */
  private ask(op: "O" | "D", sandbox: SandboxToEnter): Promise<string | undefined> {
    if (this.broken) return Promise.resolve("the fork-server is not running");
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.doorAnswers.set(id, (errno) =>
        resolve(errno === 0 ? undefined : (errnoNames.get(errno) ?? `errno ${errno}`)),
      );
      this.write(sandboxMessage(op, id, sandbox));
      this.refresh();
    });
  }

  /** @internal for Command */
  send(message: Buffer): void {
    if (!this.broken) this.write(message);
  }

  /** @internal for Command */
  finished(command: Command): void {
    this.commands.delete(command.id);
    if (command.pgid !== undefined) this.watch?.ended(command.pgid);
    this.refresh();
  }

  /** @internal for EventParser */
  event(id: number, type: string, body: Buffer): void {
    if (id === 0) {
      if (type === "r" || type === "p") this.helperReady(type);
      else if (type === "q") this.eventPipe?.destroy(); // it could not open the pipe: stdout it is
      return;
    }
    if (type === "m") {
      this.doorAnswers.get(id)?.(body.readInt32LE(0));
      this.doorAnswers.delete(id);
      this.refresh();
      return;
    }
    const command = this.commands.get(id);
    if (!command) return;
    command.flushOutput();
    if (type === "s") {
      const pgid = body.readInt32LE(0);
      this.watch?.started(pgid);
      command.started(pgid);
    } else if (type === "f") {
      command.failedToStart(body.readInt32LE(0), body.subarray(4).toString("latin1"));
    } else if (type === "x") {
      command.exited(body.readInt32LE(0));
    } else if (type === "d") {
      command.done(body.readInt32LE(0), Number(body.readBigInt64LE(4)), Number(body.readBigInt64LE(12)));
    }
  }

  /**
   * @internal for EventParser. The helper relays output once a millisecond, all its pipe gathered,
   * so a chatty step makes few large chunks. Pieces of an event pipe read are handed on before its
   * callback returns (the buffer is reused); stdout's at the end of the event loop turn. Either
   * way in chunks of up to MAX_CHUNK_BYTES.
   */
  output(id: number, stream: OutputStream, data: Buffer): void {
    const command = this.commands.get(id);
    if (!command) return;
    if (command.output(stream, data) >= MAX_CHUNK_BYTES) {
      command.flushOutput();
      return;
    }
    this.withOutput.add(command);
    if (!this.readingPipe) this.flushScheduled ??= setImmediate(() => this.flushOutput());
  }

  private flushOutput(): void {
    this.flushScheduled = undefined;
    for (const command of this.withOutput) command.flushOutput();
    this.withOutput.clear();
  }

  private flushScheduled: NodeJS.Immediate | undefined;

  /** Commands holding output pieces of the chunk being parsed. */
  private readonly withOutput = new Set<Command>();

  /** Keeps Node alive while a command runs through the helper, and only then. */
  private refresh(): void {
    for (const events of [this.helper.stdout, this.eventPipe]) {
      if (!(events instanceof Socket)) continue;
      if (this.commands.size > 0 || this.doorAnswers.size > 0) events.ref();
      else events.unref();
    }
  }

  /** The helper is gone: what it had not started goes to the fallback, what it ran has failed. */
  private abandon(reason: string): void {
    for (const answer of this.doorAnswers.values()) answer(-1);
    this.doorAnswers.clear();
    for (const command of [...this.commands.values()]) {
      this.commands.delete(command.id);
      command.abandon(reason, this.fallback);
    }
    this.refresh();
  }
}

/** One command's life in the helper, from the start request to its 'd' event. */
class Command {
  pgid: number | undefined;
  private readonly decoders = { stdout: new OutputDecoder(), stderr: new OutputDecoder() };
  private stopReason: "timeout" | "canceled" | undefined;
  private exitStatus: number | undefined;
  private sigtermSent = false;
  private receivedSinceDrainCheck = false;
  private readonly timeoutTimer: NodeJS.Timeout | undefined;
  private killTimer: NodeJS.Timeout | undefined;
  private pollTimer: NodeJS.Timeout | undefined;
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly onAbort = () => this.stop("canceled");

  constructor(
    readonly id: number,
    private readonly request: ExecRequest,
    private readonly startedAt: number,
    private readonly launcher: ForkServerLauncher,
    private readonly resolve: (result: ExecResult) => void,
  ) {
    if (request.timeoutMs !== undefined)
      this.timeoutTimer = setTimeout(() => this.stop("timeout"), request.timeoutMs);
    request.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  started(pgid: number): void {
    this.pgid = pgid;
    this.request.onStarted?.(pgid);
    if (this.stopReason) this.terminateGroup();
  }

  /**
   * Keeps a piece of output; returns the bytes of `stream` kept. Kept pieces are decoded and
   * handed on together, so the masker, cap and event stream see few large chunks. A piece that
   * would pass MAX_CHUNK_BYTES sends them on first; a larger one (a pipe read holds up to 1 MiB)
   * goes 64 KiB at a time, never copied into a chunk with part of the next read.
   */
  output(stream: OutputStream, data: Buffer): number {
    this.receivedSinceDrainCheck = true;
    if (this.pendingBytes[stream] > 0 && this.pendingBytes[stream] + data.length > MAX_CHUNK_BYTES)
      this.flushStream(stream);
    let piece = data;
    while (piece.length > MAX_CHUNK_BYTES) {
      this.pieces[stream].push(piece.subarray(0, MAX_CHUNK_BYTES));
      this.flushStream(stream);
      piece = piece.subarray(MAX_CHUNK_BYTES);
    }
    this.pieces[stream].push(piece);
    this.pendingBytes[stream] += piece.length;
    return this.pendingBytes[stream];
  }

  flushOutput(): void {
    this.flushStream("stdout");
    this.flushStream("stderr");
  }

  private flushStream(stream: OutputStream): void {
    const pieces = this.pieces[stream];
    if (pieces.length === 0) return;
    const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
    this.pieces[stream] = [];
    this.pendingBytes[stream] = 0;
    const text = this.decoders[stream].write(data);
    if (text) this.request.onOutput(stream, text);
  }

  private pieces: Record<OutputStream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly pendingBytes: Record<OutputStream, number> = { stdout: 0, stderr: 0 };

  failedToStart(errno: number, stage: string): void {
    const message = startFailure(this.request, errnoNames.get(errno) ?? `errno ${errno}`, stage);
    // Its folders not moved into the sandbox (or its door gone): another sandbox may take it.
    const refused = stage === "move" ? { sandboxRefused: true as const } : {};
    this.end({ ...notStarted(this.startedAt, "failed", message), ...refused });
  }

  exited(status: number): void {
    this.exitStatus = status;
    this.stopTimers();
    const pgid = this.pgid!;
    if (!groupAnswers(pgid)) {
      clearTimeout(this.killTimer);
      this.drainPipes();
      return;
    }
    this.pollTimer = setTimeout(() => this.stopSurvivors(pgid), GROUP_SETTLE_MS);
  }

  /** The leader is gone but its group is not empty yet: whatever it started and still runs is stopped. */
  private stopSurvivors(pgid: number): void {
    if (!groupIsAlive(pgid)) {
      clearTimeout(this.killTimer);
      this.drainPipes();
      return;
    }
    this.terminateGroup();
    this.pollTimer = setInterval(() => {
      if (groupIsAlive(pgid)) return;
      clearInterval(this.pollTimer);
      clearTimeout(this.killTimer);
      this.drainPipes();
    }, GROUP_POLL_MS);
  }

  done(status: number, cpuMicros: number, maxRssKiB: number): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const rest = this.decoders[stream].end();
      if (rest) this.request.onOutput(stream, rest);
    }
    const { code, signal } = decodeWaitStatus(status);
    this.end({
      status: this.stopReason ?? (code === 0 ? "success" : "failed"),
      exitCode: code,
      signal,
      durationMs: Math.round(performance.now() - this.startedAt),
      memoryPeakBytes: maxRssKiB * 1024,
      cpuMs: Math.round(cpuMicros / 1000),
    });
  }

  abandon(reason: string, fallback: ProcessLauncher): void {
    if (this.pgid === undefined) {
      this.stopTimers();
      fallback.run(this.request).then(this.resolve);
      return;
    }
    this.terminateGroup();
    this.end({ ...notStarted(this.startedAt, "failed"), spawnError: reason });
  }

  private stop(reason: "timeout" | "canceled"): void {
    if (this.exitStatus !== undefined || this.stopReason) return;
    this.stopReason = reason;
    if (this.pgid !== undefined) this.terminateGroup();
  }

  private terminateGroup(): void {
    if (this.sigtermSent || this.pgid === undefined) return;
    this.sigtermSent = true;
    const pgid = this.pgid;
    signalGroup(pgid, "SIGTERM");
    this.killTimer = setTimeout(() => {
      signalGroup(pgid, "SIGKILL");
      if (this.exitStatus !== undefined) {
        clearInterval(this.pollTimer);
        this.drainPipes();
      }
    }, this.request.killGraceMs);
  }

  /** Waits for the pipes to report their end; has the helper close them if they stay open and quiet. */
  private drainPipes(): void {
    if (this.drainTimer) return;
    const check = () => {
      if (this.receivedSinceDrainCheck) {
        this.receivedSinceDrainCheck = false;
        this.drainTimer = setTimeout(check, PIPE_DRAIN_MS);
        return;
      }
      this.launcher.send(closeMessage(this.id));
    };
    this.receivedSinceDrainCheck = false;
    this.drainTimer = setTimeout(check, PIPE_DRAIN_MS);
  }

  private stopTimers(): void {
    clearTimeout(this.timeoutTimer);
    this.request.signal?.removeEventListener("abort", this.onAbort);
  }

  private end(result: ExecResult): void {
    this.stopTimers();
    clearTimeout(this.killTimer);
    clearInterval(this.pollTimer);
    clearTimeout(this.drainTimer);
    this.launcher.finished(this);
    this.resolve(result);
  }
}

/** Whether any process, a zombie included, is still in the group (one syscall, no /proc scan). */
function groupAnswers(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** A folder of this user's alone (0700) for the helper's event pipe; undefined where none can be made. */
function privateFolder(): string | undefined {
  try {
    return pipeFolders.make(tmpdir(), "runyard-events-");
  } catch {
    return undefined;
  }
}

/** Folders of event pipes no helper has opened yet. */
const pipeFolders = new ExitRemovedFolders();

/** What spawn would refuse: a NUL byte cannot cross execve. */
function nulProblem(request: ExecRequest): string | undefined {
  if (request.argv.some((arg) => arg.includes("\0"))) return "an argument holds a NUL byte";
  for (const [name, value] of Object.entries(request.env)) {
    if (name.includes("\0") || value.includes("\0"))
      return `the environment variable ${JSON.stringify(name)} cannot be passed`;
  }
  return undefined;
}

/** Why `request`'s command did not start, from the fork-server's errno name and stage ('f'). */
function startFailure(request: ExecRequest, code: string, stage: string): string {
  const program = request.argv[0]!;
  if (stage === "chdir") return `cannot start "${program}" in "${request.cwd}": ${code}`;
  if (stage === "stopped") return `cannot start "${program}": ${stoppedBeforeStart}`;
  if (stage === "unstarted") return `cannot start "${program}": ${killedBeforeStart}`;
  if (stage === "folders") return `cannot start "${program}": ${RUN_FOLDERS_NOT_ATTACHED} (${code})`;
  if (stage === "setns" || stage === "clone" || stage === "move")
    return `cannot start "${program}" in the run's sandbox (${stage}): ${code}`;
  return describeSpawnError(program, Object.assign(new Error(code), { code }));
}
