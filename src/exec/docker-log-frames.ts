import { StringDecoder } from "node:string_decoder";

/** One line of a container's output. */
export interface LogLine {
  stream: "stdout" | "stderr";
  line: string;
}

/**
 * Docker's multiplexed log format (no TTY): frames of an 8-byte header (stream 1 or 2, then a
 * big-endian length) and the payload; frames split lines anywhere, so each stream keeps its own
 * unfinished line until the next newline or the end, and its own decoder, since a program may
 * write half of a multi-byte character.
 */
export async function* demultiplex(
  chunks: AsyncIterable<Buffer> | Iterable<Buffer>,
): AsyncGenerator<LogLine> {
  let pending: Buffer = Buffer.alloc(0);
  const partial = { stdout: "", stderr: "" };
  const decoders = { stdout: new StringDecoder("utf8"), stderr: new StringDecoder("utf8") };
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 8) {
      const size = pending.readUInt32BE(4);
      if (pending.length < 8 + size) break;
      const stream = pending[0] === 2 ? "stderr" : "stdout";
      const text = partial[stream] + decoders[stream].write(pending.subarray(8, 8 + size));
      pending = pending.subarray(8 + size);
      const lines = text.split("\n");
      partial[stream] = lines.pop() ?? "";
      for (const line of lines) yield { stream, line };
    }
  }
  for (const stream of ["stdout", "stderr"] as const) {
    partial[stream] += decoders[stream].end();
    if (partial[stream] !== "") yield { stream, line: partial[stream] };
  }
}
