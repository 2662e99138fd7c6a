import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";

/** The whole-log cap of a bot that names none (its file and the one rotated before it together). */
export const defaultBotLogFileBytes = 8 * 1024 * 1024;

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

  /** Everything kept, oldest first. */
  read(): Buffer {
    const parts: Buffer[] = [];
    for (const path of [this.previous, this.current]) {
      if (existsSync(path)) parts.push(readFileSync(path));
    }
    return Buffer.concat(parts);
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
