import { existsSync, mkdtempSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { EventInput } from "../core/events.js";
import { OutputSpool, SpoolDisk } from "./output-spool.js";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function output(data: string): EventInput {
  return { type: "step.output", step: "s", host: "h", stream: "stdout", data };
}

describe("OutputSpool", () => {
  it("gives back what it kept in order, a few at a time, multi-byte text across its reads included", () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-spool-"));
    dirs.push(dir);
    const spool = new OutputSpool(dir, "job/1", 1024 * 1024);
    const lines = Array.from({ length: 20_000 }, (_, i) => `ligne ${i} é ✓ ${"x".repeat(i % 50)}\n`);
    for (const line of lines) spool.append(output(line));
    expect(spool.empty).toBe(false);
    const back: string[] = [];
    while (!spool.empty) {
      const taken = spool.take(64 * 1024);
      expect(taken.length).toBeGreaterThan(0);
      for (const event of taken) if (event.type === "step.output") back.push(event.data);
    }
    expect(back).toEqual(lines);
    // Read back whole: the file goes.
    expect(existsSync(join(dir, `${encodeURIComponent("job/1")}.jsonl`))).toBe(false);
  });

  it("is full for output past its cap, never for the other events", () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-spool-"));
    dirs.push(dir);
    const spool = new OutputSpool(dir, "job", 1000);
    spool.append(output("a".repeat(900)));
    expect(spool.full(output("b".repeat(200)))).toBe(true);
    expect(
      spool.full({ type: "notice", level: "warn", step: "s", host: "h", message: "m".repeat(2000) }),
    ).toBe(false);
    spool.take(10);
    expect(spool.full(output("b".repeat(200)))).toBe(false);
    spool.remove();
    expect(spool.empty).toBe(true);
  });

  it("holds its file on disk to its cap while the server reads it back no faster than a step writes", () => {
    // A step that prints without pause keeps the spool from ever emptying once it started (a
    // server away a moment): what was read back stays in the file until the spool empties.
    const dir = mkdtempSync(join(tmpdir(), "runyard-spool-"));
    dirs.push(dir);
    const spool = new OutputSpool(dir, "job", 10_000);
    const file = join(dir, "job.jsonl");
    for (let i = 0; i < 200; i++) {
      const event = output("o".repeat(900));
      if (!spool.full(event)) spool.append(event);
      if (i % 2 === 1) spool.take(1);
      expect(existsSync(file) ? statSync(file).size : 0).toBeLessThanOrEqual(10_000 + 1000);
    }
  });

  it("shares one overall cap among the spools of a runner, and frees a spool's share once it drains", () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-spool-"));
    dirs.push(dir);
    const disk = new SpoolDisk(dir, 3000, 0);
    const a = new OutputSpool(dir, "a", 10_000, disk);
    const b = new OutputSpool(dir, "b", 10_000, disk);
    a.append(output("a".repeat(1400)));
    b.append(output("b".repeat(1400)));
    expect(a.refuses(output("c".repeat(300)))).toMatch(
      /at most 3000 bytes of all its jobs' output.*RUNYARD_SPOOL_MAX_BYTES/,
    );
    expect(b.full(output("c".repeat(300)))).toBe(true);
    a.take(1_000_000);
    expect(b.full(output("c".repeat(300)))).toBe(false);
  });

  it("keeps the events a full disk refused in memory, in order, and drops output meanwhile", () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-spool-"));
    dirs.push(dir);
    const disk = new SpoolDisk(dir, 1024 * 1024, 0);
    const spool = new OutputSpool(dir, "job", 1024 * 1024, disk);
    // Every write to the spool's file fails as on a full disk (ENOSPC).
    symlinkSync("/dev/full", join(dir, "job.jsonl"));
    const end: EventInput = { type: "notice", level: "info", step: "s", host: "h", message: "the end" };
    spool.append(output("first"));
    expect(spool.refuses(output("more"))).toMatch(/^the disk of the runner's spool \(.*\) is full$/);
    spool.append(end);
    expect(spool.empty).toBe(false);
    expect(spool.take(1024)).toEqual([output("first"), end]);
    expect(spool.empty).toBe(true);
    // The file is made anew: the spool takes events again.
    spool.append(output("later"));
    expect(spool.take(1024)).toEqual([output("later")]);
  });
});
