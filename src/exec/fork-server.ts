import { type ChildProcessByStdio, spawn } from "node:child_process";
import { Socket } from "node:net";
import { constants } from "node:os";
import type { Readable, Writable } from "node:stream";
import { StringDecoder } from "node:string_decoder";
import { groupIsAlive } from "./resources.js";
import { describeSpawnError, notStarted, signalGroup, startProblem } from "./spawn-launcher.js";
import type { ExecRequest, ExecResult, OutputStream, ProcessGroupWatch, ProcessLauncher } from "./types.js";

/** How often the group is checked for survivors while it gets its SIGTERM grace. */
const GROUP_POLL_MS = 50;
/**
 * How long a group that still answers when its leader exits gets to empty by itself before
 * /proc is scanned for what is left (a scan reads every process's stat: ~3 ms with 100
 * processes on the machine). A sandboxed step's leader, bwrap, exits a moment before the pid 1
 * of its namespace, so its group nearly always still answers then; the helper's 'd' (the
 * group is empty) comes within a millisecond or two and ends the command before any scan.
 */
const GROUP_SETTLE_MS = 10;
/**
 * Once the group is gone, how long the output pipes may stay quiet before they are closed
 * anyway: a process that left the group (setsid) may still hold them, and nobody waits for it.
 */
const PIPE_DRAIN_MS = 250;
const HEADER_BYTES = 12;
/**
 * The largest chunk of output handed on at once. Larger chunks cost less per byte here, but
 * every chunk becomes one event, and a runner's events are held (and a server's stored and
 * sent) whole: 64 KiB keeps those buffers as they were with Node's own pipe reads.
 */
const MAX_CHUNK_BYTES = 64 * 1024;
/**
 * Output that arrives less than this long after the last hand-on waits up to this long (or
 * until MAX_CHUNK_BYTES) for what follows: a step printing a lot makes a few large chunks
 * instead of one per pipe read (each chunk is an event, a render, a write), while the first
 * bytes after a quiet spell still go out in the same turn of the event loop.
 */
const STREAMING_DELAY_MS = 2;
/** The size of Node's reads of a pipe: a read this large may have left more behind. */
const PIPE_READ_BYTES = 64 * 1024;

type Helper = ChildProcessByStdio<Writable, Readable, null>;

/**
 * Starts step processes through the fork-server (native/fork-server.c), a small resident C
 * process: Node's own spawn forks the whole Node process (~2.6 ms a step on a 2-core machine,
 * most of a trivial step's cost), the helper's fork costs ~0.1 ms. The helper starts each
 * command as a session and process group leader, stops its groups when this process dies
 * (its stdin ends; it also has a parent-death signal), relays the output
 * in large chunks over one pipe, and reports the exit with exact figures from wait4 (CPU, peak
 * RSS), so nothing is sampled from /proc. Timeouts, cancel and the group's survivors are handled
 * here, as in spawn-launcher.ts: SIGTERM to the group, SIGKILL after the grace.
 *
 * Should the helper fail to start or die, commands it had not started yet, and all later ones,
 * go to `fallback` (plain spawn).
 */
export class ForkServerLauncher implements ProcessLauncher {
  private readonly helper: Helper;
  private readonly commands = new Map<number, Command>();
  private readonly parser: EventParser;
  private readonly watch: ProcessGroupWatch | undefined;
  private nextId = 1;
  private broken = false;
  /** Resolves when the helper has exited (or could not start). */
  private readonly exited: Promise<void>;

  constructor(
    helperPath: string,
    private readonly fallback: ProcessLauncher,
    options: { killGraceMs: number; watch?: ProcessGroupWatch; onBroken?: (reason: string) => void },
  ) {
    this.watch = options.watch;
    // detached: a session of its own, so a Ctrl-C at the terminal reaches the runner, which
    // cancels its steps, and not the helper.
    this.helper = spawn(helperPath, [String(options.killGraceMs)], {
      detached: true,
      stdio: ["pipe", "pipe", "inherit"],
    });
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
    this.helper.stdin.on("error", () => {}); // its end is reported by "exit"
    this.parser = new EventParser(this);
    this.helper.stdout.on("data", (chunk: Buffer) => {
      this.readDrained = chunk.length < PIPE_READ_BYTES;
      this.parser.push(chunk);
    });
    this.helper.unref();
    this.refresh();
  }

  run(request: ExecRequest): Promise<ExecResult> {
    if (this.broken) return this.fallback.run(request);
    const startedAt = performance.now();
    if (request.signal?.aborted) return Promise.resolve(notStarted(startedAt, "canceled"));
    const problem = startProblem(request) ?? nulProblem(request);
    if (problem) return Promise.resolve(notStarted(startedAt, "failed", problem));
    return new Promise((resolve) => {
      const id = this.nextId++;
      this.commands.set(id, new Command(id, request, startedAt, this, resolve));
      this.helper.stdin.write(startMessage(id, request));
      this.refresh();
    });
  }

  /**
   * Ends the helper's stdin, on which it stops the groups still running (SIGTERM, SIGKILL after
   * the grace) and exits; resolves once it has. The helper is referenced again meanwhile, so
   * Node waits for it rather than leaving it to end after this process.
   */
  close(): Promise<void> {
    this.broken = true; // its exit is no news now
    if (this.helper.exitCode === null && this.helper.signalCode === null) this.helper.ref();
    this.helper.stdin.end();
    return this.exited;
  }

  /** @internal for Command */
  send(message: Buffer): void {
    if (!this.broken) this.helper.stdin.write(message);
  }

  /** @internal for Command */
  finished(command: Command): void {
    this.commands.delete(command.id);
    if (command.pgid !== undefined) this.watch?.ended(command.pgid);
    this.refresh();
  }

  /** @internal for EventParser */
  event(id: number, type: string, body: Buffer): void {
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

  /** @internal for EventParser */
  output(id: number, stream: OutputStream, data: Buffer): void {
    const command = this.commands.get(id);
    if (!command) return;
    if (command.output(stream, data) >= MAX_CHUNK_BYTES) {
      command.flushOutput();
      return;
    }
    this.withOutput.add(command);
    if (!this.flushScheduled) {
      this.streamingWait = performance.now() - this.lastFlushAt < STREAMING_DELAY_MS;
      this.flushScheduled = this.streamingWait
        ? setTimeout(() => this.flushOutput(), STREAMING_DELAY_MS)
        : setImmediate(() => this.flushOutput());
    }
    // Streaming, and all the helper had sent is read: its pipe is left unread until the wait
    // ends, so what follows comes in a few large reads rather than a wakeup, a read and a parse
    // per write of the step (often 4 KiB each). The pipes behind it (1 MiB) hold the output meanwhile.
    if (this.streamingWait && this.readDrained && !this.helper.stdout.isPaused()) this.helper.stdout.pause();
  }

  /** Hands on the output gathered in this turn of the event loop. */
  private flushOutput(): void {
    this.flushScheduled = undefined;
    if (this.helper.stdout.isPaused()) this.helper.stdout.resume();
    this.lastFlushAt = performance.now();
    for (const command of this.withOutput) command.flushOutput();
    this.withOutput.clear();
  }

  private flushScheduled: NodeJS.Immediate | NodeJS.Timeout | undefined;
  /** Whether the scheduled flush waits for more of a streaming step's output. */
  private streamingWait = false;
  /** Whether the last read of the helper's pipe took all it held (a read short of a full buffer). */
  private readDrained = true;
  private lastFlushAt = Number.NEGATIVE_INFINITY;

  /** Commands holding output pieces of the chunk being parsed. */
  private readonly withOutput = new Set<Command>();

  /** Keeps Node alive while a command runs through the helper, and only then. */
  private refresh(): void {
    const stdout = this.helper.stdout;
    if (!(stdout instanceof Socket)) return;
    if (this.commands.size > 0) stdout.ref();
    else stdout.unref();
  }

  /** The helper is gone: what it had not started goes to the fallback, what it ran has failed. */
  private abandon(reason: string): void {
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
  private readonly decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
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
    if (this.stopReason) this.terminateGroup();
  }

  /**
   * The helper relays output as the step writes it, often 4 KiB at a time; the pieces that
   * arrive in one turn of the event loop are decoded and handed on together, so the masker, the
   * cap and the event stream see a few large chunks, not many small ones.
   */
  /** Keeps a piece of output; returns how many bytes of `stream` are kept. */
  output(stream: OutputStream, data: Buffer): number {
    this.receivedSinceDrainCheck = true;
    this.pieces[stream].push(data);
    this.pendingBytes[stream] += data.length;
    return this.pendingBytes[stream];
  }

  flushOutput(): void {
    for (const stream of ["stdout", "stderr"] as const) {
      const pieces = this.pieces[stream];
      if (pieces.length === 0) continue;
      const data = pieces.length === 1 ? pieces[0]! : Buffer.concat(pieces);
      this.pieces[stream] = [];
      this.pendingBytes[stream] = 0;
      const text = this.decoders[stream].write(data);
      if (text) this.request.onOutput(stream, text);
    }
  }

  private pieces: Record<OutputStream, Buffer[]> = { stdout: [], stderr: [] };
  private readonly pendingBytes: Record<OutputStream, number> = { stdout: 0, stderr: 0 };

  failedToStart(errno: number, stage: string): void {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    const program = this.request.argv[0]!;
    const message =
      stage === "chdir"
        ? `cannot start "${program}" in "${this.request.cwd}": ${code}`
        : describeSpawnError(program, Object.assign(new Error(code), { code }));
    this.end(notStarted(this.startedAt, "failed", message));
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
    // Nothing supervises its group now: stop it.
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

/**
 * Splits the helper's event stream into events without copying output: the bytes of an output
 * event are handed on as they arrive, a piece per chunk read; only headers and the few bytes of
 * other events are gathered.
 */
class EventParser {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFilled = 0;
  private id = 0;
  private type = "";
  private remaining = 0;
  private body: Buffer[] = [];

  constructor(private readonly launcher: ForkServerLauncher) {}

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.headerFilled < HEADER_BYTES) {
        const take = Math.min(HEADER_BYTES - this.headerFilled, chunk.length - at);
        chunk.copy(this.header, this.headerFilled, at, at + take);
        this.headerFilled += take;
        at += take;
        if (this.headerFilled < HEADER_BYTES) return;
        this.id = this.header.readUInt32LE(0);
        this.type = String.fromCharCode(this.header[4]!);
        this.remaining = this.header.readUInt32LE(8);
        this.body = [];
        if (this.remaining === 0) this.complete();
        continue;
      }
      const take = Math.min(this.remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + take);
      at += take;
      this.remaining -= take;
      if (this.type === "o" || this.type === "e") {
        this.launcher.output(this.id, this.type === "o" ? "stdout" : "stderr", piece);
      } else {
        this.body.push(piece);
      }
      if (this.remaining === 0) this.complete();
    }
  }

  private complete(): void {
    this.headerFilled = 0;
    if (this.type !== "o" && this.type !== "e")
      this.launcher.event(this.id, this.type, Buffer.concat(this.body));
    this.body = [];
  }
}

function startMessage(id: number, request: ExecRequest): Buffer {
  const env = Object.entries(request.env).map(([name, value]) => `${name}=${value}`);
  const strings = Buffer.from(`${[request.cwd ?? "", ...request.argv, ...env].join("\0")}\0`, "utf8");
  const message = Buffer.allocUnsafe(4 + 4 + 1 + 8 + strings.length);
  message.writeUInt32LE(message.length - 4, 0);
  message.writeUInt32LE(id, 4);
  message.write("S", 8, "latin1");
  message.writeUInt32LE(request.argv.length, 9);
  message.writeUInt32LE(env.length, 13);
  strings.copy(message, 17);
  return message;
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

function closeMessage(id: number): Buffer {
  const message = Buffer.allocUnsafe(9);
  message.writeUInt32LE(5, 0);
  message.writeUInt32LE(id, 4);
  message.write("C", 8, "latin1");
  return message;
}

/** What spawn would refuse: a NUL byte cannot cross execve. */
function nulProblem(request: ExecRequest): string | undefined {
  if (request.argv.some((arg) => arg.includes("\0"))) return "an argument holds a NUL byte";
  for (const [name, value] of Object.entries(request.env)) {
    if (name.includes("\0") || value.includes("\0"))
      return `the environment variable ${JSON.stringify(name)} cannot be passed`;
  }
  return undefined;
}

const signalNames = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));
const errnoNames = new Map(Object.entries(constants.errno).map(([name, number]) => [number, name]));

/** A wait status as Node reports an exit: the code, or the signal that ended the process. */
function decodeWaitStatus(status: number): { code: number | null; signal: string | null } {
  const termSignal = status & 0x7f;
  if (termSignal === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal: signalNames.get(termSignal) ?? `signal ${termSignal}` };
}
