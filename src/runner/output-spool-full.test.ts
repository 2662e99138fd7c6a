import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { EventInput } from "../core/events.js";
import { OutputSpool } from "./output-spool.js";

const mounts: string[] = [];
afterEach(() => {
  for (const at of mounts.splice(0)) {
    execFileSync("umount", [at]);
    rmSync(at, { recursive: true, force: true });
  }
});

/** A spool's folder on a disk with no inode left: its file cannot even be made. */
function fullSpoolFolder(): string {
  const at = mkdtempSync(join(tmpdir(), "runyard-spool-full-"));
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k,nr_inodes=2", "tmpfs", at]);
  mounts.push(at);
  const dir = join(at, "spool");
  mkdirSync(dir);
  return dir;
}

const output = (data: string) =>
  ({ type: "step.output", stepId: "s", stream: "stdout", data }) as unknown as EventInput;

describe.skipIf(process.getuid?.() !== 0)("a job's spool on a disk that cannot make its file", () => {
  it("gives back the events it kept in memory, in order", () => {
    const spool = new OutputSpool(fullSpoolFolder(), "job-1");
    spool.append(output("a"));
    spool.append(output("b"));
    expect(spool.empty).toBe(false);
    expect(spool.take(1 << 20)).toEqual([output("a"), output("b")]);
    expect(spool.empty).toBe(true);
  });
});
