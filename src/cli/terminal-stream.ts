import { StringDecoder } from "node:string_decoder";
import { TerminalOutput } from "../core/terminal-text.js";

/**
 * The one place the CLI's output passes on its way to a terminal: every command writes to the
 * streams of its context, and on a terminal those drop every escape sequence but colours, and
 * every control but line breaks, tabs and carriage returns (core/terminal-text.ts). So what a
 * step printed, or a name a printer forgot to clean, may colour the text but never retitle the
 * window, write the clipboard, plant a link or move the cursor. Names are also cleaned of colours
 * where they are printed (`printable`). `raw` (the `--raw` flag) writes output as it came; a
 * stream that is not a terminal (a file, a pipe) is written as it came too.
 */
export function terminalSafe<S extends NodeJS.WriteStream>(stream: S, raw: boolean): S {
  if (raw || !stream.isTTY) return stream;
  const output = new TerminalOutput();
  const decoder = new StringDecoder("utf8");
  const write = (
    chunk: string | Uint8Array,
    encoding?: BufferEncoding | ((error?: Error | null) => void),
    done?: (error?: Error | null) => void,
  ): boolean => {
    const callback = typeof encoding === "function" ? encoding : done;
    const text =
      typeof chunk === "string" ? chunk : decoder.write(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk));
    const safe = output.push(text);
    if (safe.length === 0) {
      if (callback) process.nextTick(callback);
      return true;
    }
    // Looked up at each write: closed-output.ts replaces the stream's write when its reader goes.
    return callback ? stream.write(safe, callback) : stream.write(safe);
  };
  // Everything but `write` is the stream's own, called on the stream itself.
  return new Proxy(stream, {
    get(target, property) {
      if (property === "write") return write;
      const value = Reflect.get(target, property, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
}
