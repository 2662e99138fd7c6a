import { StringDecoder } from "node:string_decoder";

/** One line of a container's output. */
export interface LogLine {
  stream: "stdout" | "stderr";
  line: string;
}

/** One frame of Docker's multiplexed stream: a piece of one stream's output, cut anywhere. */
export interface OutputFrame {
  stream: "stdout" | "stderr";
  data: Buffer;
}

/**
 * Docker's multiplexed format (no TTY): frames of an 8-byte header (stream 1 or 2, then a
 * big-endian length) and the payload, themselves split anywhere across chunks.
 */
export async function* frames(chunks: AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<OutputFrame> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      yield { stream: pending[0] === 2 ? "stderr" : "stdout", data: pending.subarray(8, 8 + size) };
      pending = pending.subarray(8 + size);
    }
  }
}

/**
 * The multiplexed stream as lines: frames split lines anywhere, so each stream keeps its own
 * unfinished line until the next newline or the end, and its own decoder, since a program may
 * write half of a multi-byte character.
 */
export async function* demultiplex(
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
): AsyncGenerator<LogLine> {
  const partial = { stdout: "", stderr: "" };
  const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  for await (const { stream, data } of frames(chunks)) {
    const lines = (partial[stream] + decoders[stream].write(data)).split("\n");
    partial[stream] = lines.pop() ?? "";
    for (const line of lines) yield { stream, line };
  }
  for (const stream of ["stdout", "stderr"] as const) {
    partial[stream] += decoders[stream].end();
    if (partial[stream] !== "") yield { stream, line: partial[stream] };
  }
}
