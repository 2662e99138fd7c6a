import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from "node:fs";
import { RunyardError } from "./errors.js";

/**
 * An exclusive claim on a folder by one live process: a file holding the owner's pid and start
 * time. A claim whose process is gone (crash, kill -9) is stale and taken over; a pid reused by
 * another process does not count, because its start time differs.
 */
export function acquirePidLock(path: string, what: string): () => void {
  const mine = `${process.pid} ${processStartTime(process.pid) ?? "?"}`;
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      writeSync(fd, mine);
      closeSync(fd);
      return () => {
        try {
          if (readFileSync(path, "utf8") === mine) unlinkSync(path);
        } catch {
          // gone already
        }
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    const [pid, startTime] = readOwner(path);
    if (pid !== undefined && processStartTime(pid) === startTime) {
      throw new RunyardError("HOME_LOCKED", `${what} is in use by another runyard process (pid ${pid})`);
    }
    try {
      unlinkSync(path); // stale: its owner is gone
    } catch {
      // another process took it over first; the next attempt sees its claim
    }
  }
  throw new RunyardError("HOME_LOCKED", `${what} is being claimed by another runyard process`);
}

function readOwner(path: string): [number | undefined, string | undefined] {
  try {
    const [pid, startTime] = readFileSync(path, "utf8").trim().split(" ");
    return [Number(pid) > 0 ? Number(pid) : undefined, startTime];
  } catch {
    return [undefined, undefined];
  }
}

/** Field 22 of /proc/<pid>/stat: when the process started, in clock ticks since boot. */
export function processStartTime(pid: number): string | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "latin1");
    return text.slice(text.lastIndexOf(") ") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}
