import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/** The whole-log cap of a bot that names none (its file and the one rotated before it together). */
export const defaultBotLogFileBytes = 8 * 1024 * 1024;
/**
 * The most of a kept log one download sends: its newest part, as much as a bot's default log.
 * The server holds it whole before answering; it crosses the runner's link in parts
 * (`bot_reply_part`), so no message nears the link's largest (64 MiB) and the jobs sharing the
 * link keep sending between them.
 */
export const maxBotLogDownloadBytes = defaultBotLogFileBytes;

/**
 * A bot's whole container output on its runner, for download: masked lines (`TIME STREAM TEXT`)
 * appended to `<bot>.log`, which is rotated to `<bot>.log.1` at half the bot's cap, so the two
 * together never pass it and the newest output is always kept. Lives of the same bot append.
 */
export class BotLogFile {
  private readonly current: string;
  private readonly previous: string;
  private fd: number | null = null;
  private size = 0;

  constructor(
    dir: string,
    botId: string,
    private readonly maxBytes = defaultBotLogFileBytes,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Bot ids are the server's (`bot_...`); nothing else reaches a path.
    const safe = botId.replace(/[^A-Za-z0-9_-]/g, "_");
    this.current = join(dir, `${safe}.log`);
    this.previous = join(dir, `${safe}.log.1`);
  }

  /** Appends one line of output (already masked). */
  write(ts: string, stream: string, text: string): void {
    const line = Buffer.from(`${ts} ${stream} ${text}\n`);
    if (this.fd === null) {
      this.fd = openSync(this.current, "a", 0o600);
      this.size = existsSync(this.current) ? statSync(this.current).size : 0;
    }
    if (this.size > 0 && this.size + line.length > this.maxBytes / 2) this.rotate();
    // A single line longer than half the cap is cut: the cap holds.
    const kept =
      line.length > this.maxBytes / 2 ? line.subarray(line.length - Math.floor(this.maxBytes / 2)) : line;
    writeSync(this.fd!, kept);
    this.size += kept.length;
  }

  /**
   * Everything kept, oldest first, up to its newest `maxBytes`: past that, the output from the
   * first whole line within them, after a line saying older output was left out.
   */
  read(maxBytes = maxBotLogDownloadBytes): Buffer {
    const files = [this.previous, this.current].map((path) => ({
      path,
      size: existsSync(path) ? statSync(path).size : 0,
    }));
    let skip = Math.max(0, files.reduce((sum, file) => sum + file.size, 0) - maxBytes);
    const cut = skip > 0;
    const parts: Buffer[] = [];
    for (const { path, size } of files) {
      const from = Math.min(skip, size);
      skip -= from;
      if (size - from > 0) parts.push(readRange(path, from, size - from));
    }
    const kept = Buffer.concat(parts);
    if (!cut) return kept;
    const lineStart = kept.indexOf(10) + 1;
    const note = Buffer.from(
      `${new Date().toISOString()} runyard older output left out: a download holds the newest ${Math.floor(maxBytes / 1024 / 1024)} MiB\n`,
    );
    return Buffer.concat([note, kept.subarray(lineStart)]);
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }

  /** The bot was removed: its log goes too. */
  delete(): void {
    this.close();
    rmSync(this.current, { force: true });
    rmSync(this.previous, { force: true });
  }

  private rotate(): void {
    this.close();
    renameSync(this.current, this.previous);
    this.fd = openSync(this.current, "a", 0o600);
    this.size = 0;
  }
}

/** `length` bytes of the file at `path` from `offset` (fewer if it shrank meanwhile). */
function readRange(path: string, offset: number, length: number): Buffer {
  const buffer = Buffer.alloc(length);
  const fd = openSync(path, "r");
  try {
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buffer, got, length - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    return buffer.subarray(0, got);
  } finally {
    closeSync(fd);
  }
}
