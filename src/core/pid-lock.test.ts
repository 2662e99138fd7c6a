import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { acquirePidLock, processStartTime } from "./pid-lock.js";

const lockPath = (): string => join(mkdtempSync(join(tmpdir(), "runyard-lock-")), "server.lock");

describe("pid lock", () => {
  it("refuses a second claim while its owner lives, naming the owner", () => {
    const path = lockPath();
    const release = acquirePidLock(path, "the home folder /x");
    expect(() => acquirePidLock(path, "the home folder /x")).toThrow(
      `the home folder /x is in use by another runyard process (pid ${process.pid})`,
    );
    release();
    expect(existsSync(path)).toBe(false);
  });

  it("takes over the claim of a process that is gone", () => {
    const path = lockPath();
    const dead = spawnSync("true").pid;
    writeFileSync(path, `${dead} 12345`);
    const release = acquirePidLock(path, "home");
    expect(readFileSync(path, "utf8")).toBe(`${process.pid} ${processStartTime(process.pid)}`);
    release();
  });

  it("takes over a claim whose pid now belongs to another process (a different start time)", () => {
    const path = lockPath();
    writeFileSync(path, `${process.pid} 1`);
    acquirePidLock(path, "home")();
  });
});
