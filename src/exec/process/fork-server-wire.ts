import { constants } from "node:os";
import { SANDBOX_NAMESPACES } from "../sandbox/run-sandbox.js";
import type { ExecRequest, SandboxToEnter } from "../types.js";

/*
 * The fork-server's wire (native/fork-server.c): the messages the launcher writes to the helper,
 * each a length, a command id and a letter, and the events it reads back, each a 12-byte header
 * and a body.
 */

/** An event's header: the command's id (4 bytes), its type (1, then 3 unused) and its length (4). */
const HEADER_BYTES = 12;

/** Where the parser hands what it read: output as it comes, other events whole. */
export interface EventSink {
  output(id: number, stream: "stdout" | "stderr", piece: Buffer): void;
  event(id: number, type: string, body: Buffer): void;
}

/**
 * Splits the helper's event stream into events without copying output: the bytes of an output
 * event are handed on as they arrive, a piece per chunk read; only headers and the few bytes of
 * other events are gathered.
 */
export class EventParser {
  private header = Buffer.alloc(HEADER_BYTES);
  private headerFilled = 0;
  private id = 0;
  private type = "";
  private remaining = 0;
  private body: Buffer[] = [];

  constructor(private readonly launcher: EventSink) {}

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
        this.body.push(Buffer.from(piece)); // a copy: the event pipe's buffer is read into again
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

export function startMessage(id: number, request: ExecRequest): Buffer {
  const clone = request.clone;
  const env = clone ? [] : Object.entries(request.env).map(([name, value]) => `${name}=${value}`);
  // 'K' carries a clone's cgroup where 'S' has the cwd, and its steps as the argv.
  const argv = clone ? clone.steps : request.argv;
  const first = clone ? (clone.cgroupProcs ?? "") : (request.cwd ?? "");
  const strings = Buffer.from(`${[first, ...argv, ...env].join("\0")}\0`, "utf8");
  // 'E' carries the pid whose namespaces the command joins, and their inodes, before the fields of
  // 'S'; 'K' those of the template it clones; 'W' as 'E', then the folders moved before it starts.
  const sandbox = clone ? clone.template : request.enter;
  const moved =
    !clone && sandbox !== undefined && request.movesFirst?.length
      ? Buffer.from(`${request.movesFirst.flat().join("\0")}\0`, "utf8")
      : undefined;
  // The bytes between the op and argc: the sandbox's pid and namespaces, then 'W''s folders.
  const before =
    (sandbox === undefined ? 0 : 4 + 8 * SANDBOX_NAMESPACES.length) + (moved ? 4 + moved.length : 0);
  const message = Buffer.allocUnsafe(4 + 4 + 1 + before + 8 + strings.length);
  message.writeUInt32LE(message.length - 4, 0);
  message.writeUInt32LE(id, 4);
  message.write(clone ? "K" : moved ? "W" : sandbox !== undefined ? "E" : "S", 8, "latin1");
  if (sandbox !== undefined) {
    message.writeUInt32LE(sandbox.pid, 9);
    writeNamespaces(message, 13, sandbox);
  }
  if (moved) {
    const at = 13 + 8 * SANDBOX_NAMESPACES.length;
    message.writeUInt32LE(moved.length, at);
    moved.copy(message, at + 4);
  }
  message.writeUInt32LE(argv.length, 9 + before);
  message.writeUInt32LE(env.length, 13 + before);
  strings.copy(message, 17 + before);
  return message;
}

/** 'O' and 'D': open and end `sandbox`'s door. */
export function sandboxMessage(op: "O" | "D", id: number, sandbox: SandboxToEnter): Buffer {
  const message = Buffer.alloc(4 + 4 + 1 + 4 + 8 * SANDBOX_NAMESPACES.length);
  message.writeUInt32LE(message.length - 4, 0);
  message.writeUInt32LE(id, 4);
  message.write(op, 8, "latin1");
  message.writeUInt32LE(sandbox.pid, 9);
  writeNamespaces(message, 13, sandbox);
  return message;
}

/** The inodes of `sandbox`'s namespaces, in the helper's order, at `offset` of `message`. */
export function writeNamespaces(message: Buffer, offset: number, sandbox: SandboxToEnter): void {
  for (let index = 0; index < SANDBOX_NAMESPACES.length; index++)
    message.writeBigUInt64LE(sandbox.namespaces[index] ?? 0n, offset + 8 * index);
}

/** 'P': the event pipe is open for reading. */
export function pipeMessage(): Buffer {
  const message = Buffer.alloc(9);
  message.writeUInt32LE(5, 0);
  message.write("P", 8, "latin1");
  return message;
}

export function closeMessage(id: number): Buffer {
  const message = Buffer.allocUnsafe(9);
  message.writeUInt32LE(5, 0);
  message.writeUInt32LE(id, 4);
  message.write("C", 8, "latin1");
  return message;
}

const signalNames = new Map(Object.entries(constants.signals).map(([name, number]) => [number, name]));
/**
 * Each errno's first name: 11 is EAGAIN, not its alias EWOULDBLOCK, which a later entry would
 * make it (run-sandbox.ts tells a clone's passing failures by these names).
 */
export const errnoNames = new Map<number, string>();
for (const [name, number] of Object.entries(constants.errno))
  if (!errnoNames.has(number)) errnoNames.set(number, name);

/** A wait status as Node reports an exit: the code, or the signal that ended the process. */
export function decodeWaitStatus(status: number): { code: number | null; signal: string | null } {
  const termSignal = status & 0x7f;
  if (termSignal === 0) return { code: (status >> 8) & 0xff, signal: null };
  return { code: null, signal: signalNames.get(termSignal) ?? `signal ${termSignal}` };
}
