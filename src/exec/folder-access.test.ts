import { execFileSync, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { openToAll } from "./folder-access.js";

const roots: string[] = [];
afterEach(() => {
  for (const root of roots.splice(0)) rmSync(root, { recursive: true, force: true });
});

function folders(): { inside: string; outside: string } {
  const root = mkdtempSync(join(tmpdir(), "runyard-folder-access-"));
  roots.push(root);
  const inside = join(root, "open");
  const outside = join(root, "private");
  mkdirSync(join(inside, "d"), { recursive: true });
  mkdirSync(outside, { mode: 0o700 });
  return { inside, outside };
}

const modeOf = (path: string) => statSync(path).mode & 0o777;

describe("openToAll", () => {
  it("opens what the folder holds, and nothing a link in it leads to", async () => {
    const { inside, outside } = folders();
    writeFileSync(join(inside, "d", "file"), "x", { mode: 0o600 });
    writeFileSync(join(inside, "d", "tool"), "x", { mode: 0o700 });
    writeFileSync(join(outside, "secret"), "x", { mode: 0o600 });
    symlinkSync(outside, join(inside, "link"));
    symlinkSync(join(outside, "secret"), join(inside, "secret"));
    await openToAll(inside, true);
    expect(modeOf(join(inside, "d", "file"))).toBe(0o666);
    expect(modeOf(join(inside, "d", "tool"))).toBe(0o777);
    expect(modeOf(join(inside, "d"))).toBe(0o777);
    expect(modeOf(outside)).toBe(0o700);
    expect(modeOf(join(outside, "secret"))).toBe(0o600);
  });

  it("never opens a file outside through a folder swapped for a link while it walks", async () => {
    // A sandboxed agent writes the folder (a mirror another run's container has mounted) and
    // swaps a folder of it for a link to a private folder of the host, as fast as it can.
    const { inside, outside } = folders();
    for (let i = 0; i < 50; i++) {
      writeFileSync(join(inside, "d", `f${i}`), "x", { mode: 0o600 });
      writeFileSync(join(outside, `f${i}`), "secret", { mode: 0o600 });
    }
    const swapper = spawn(
      process.execPath,
      [
        "-e",
        `const fs = require("node:fs"); process.chdir(${JSON.stringify(inside)});
         fs.writeFileSync("swapping", "");
         for (;;) { try { fs.renameSync("d", "d.real"); fs.symlinkSync(${JSON.stringify(outside)}, "d");
           fs.unlinkSync("d"); fs.renameSync("d.real", "d"); } catch {} }`,
      ],
      { stdio: "ignore" },
    );
    // Ended with the test, even one that timed out (its body runs on, and its finally later).
    onTestFinished(() => void swapper.kill("SIGKILL"));
    try {
      while (!existsSync(join(inside, "swapping"))) await new Promise((resolve) => setImmediate(resolve));
      for (let round = 0; round < 1500; round++) {
        for (const folder of ["d", "d.real"]) {
          try {
            chmodSync(join(inside, folder, "f49"), 0o600);
          } catch {
            // swapped away this instant
          }
        }
        await openToAll(inside, true);
        const opened = [...Array(50).keys()].filter((i) => modeOf(join(outside, `f${i}`)) !== 0o600);
        expect(opened, `round ${round}`).toEqual([]);
      }
    } finally {
      // Gone before the folder is removed: a swapper still renaming would make that fail.
      const exited = new Promise((resolve) => swapper.once("exit", resolve));
      if (swapper.exitCode === null && swapper.signalCode === null) {
        swapper.kill("SIGKILL");
        await exited;
      }
    }
  }, 120_000);

  it("passes a FIFO without blocking, and a folder that is gone is nothing", async () => {
    const { inside } = folders();
    execFileSync("mkfifo", ["-m", "600", join(inside, "d", "pipe")]);
    await openToAll(inside, true);
    expect(modeOf(join(inside, "d", "pipe"))).toBe(0o666);
    await expect(openToAll(join(inside, "nothing-here"), true)).resolves.toBeUndefined();
  });
});
