import { readdirSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";

/** One step attempt as its own shell wrote it down (soak-workflows.ts). */
export interface LedgerAttempt {
  token: string;
  runId: string;
  step: string;
  /** The runner it ran on: the last part of its cwd, which is that runner's cwd. */
  runner: string;
  pid: number;
  pgid: number;
  /** Epoch ms. */
  beganAt: number;
  /** How many numbered lines it wrote down before printing them. */
  printed: number;
  /** Set when the script reached its last line. */
  end?: { at: number; code: number };
}

/** Reads every attempt's ledger; a file without its first line (killed at once) is left out. */
export function readLedger(dir: string): LedgerAttempt[] {
  const attempts: LedgerAttempt[] = [];
  for (const token of readdirSync(dir)) {
    if (token.endsWith(".flaked")) continue;
    const lines = readFileSync(join(dir, token), "utf8").split("\n");
    const begin = /^begin (\d+) (\d+) (\d+) (\S+) (\S+) (.+)$/.exec(lines[0] ?? "");
    if (!begin) continue;
    const attempt: LedgerAttempt = {
      token,
      beganAt: Number(begin[1]),
      pid: Number(begin[2]),
      pgid: Number(begin[3]),
      runId: begin[4] as string,
      step: begin[5] as string,
      runner: basename(begin[6] as string),
      printed: 0,
    };
    for (const line of lines.slice(1)) {
      if (/^\d+$/.test(line)) attempt.printed = Number(line);
      const end = /^end (\d+) (\d+)$/.exec(line);
      if (end) attempt.end = { at: Number(end[1]), code: Number(end[2]) };
    }
    attempts.push(attempt);
  }
  return attempts;
}
