import { execFileSync, spawn } from "node:child_process";
import fs, {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { freesSlowly } from "./discarding-mounts.js";
import { maxRemoveDepth, removeTree, syncCalls } from "./remove-tree.js";

const made: string[] = [];
afterEach(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function folder(): string {
  const dir = mkdtempSync(join(tmpdir(), "runyard-remove-tree-"));
  made.push(dir);
  return dir;
}

/** A folder of `count` files, each named `f<i>`, and a nested folder holding more. */
function fill(dir: string, count: number): void {
  mkdirSync(join(dir, "nested", "deeper"), { recursive: true });
  for (let i = 0; i < count; i++) {
    writeFileSync(join(dir, `f${i}`), "x\n");
    writeFileSync(join(dir, "nested", "deeper", `f${i}`), "x\n");
  }
}

describe("removeTree", () => {
  it("removes a folder and all it holds, a file, and what is already gone", async () => {
    const root = folder();
    fill(join(root, "tree"), 20);
    writeFileSync(join(root, "file"), "x");
    await removeTree(join(root, "tree"));
    await removeTree(join(root, "file"));
    await removeTree(join(root, "absent"));
    expect(readdirSync(root)).toEqual([]);
  });

  it("removes a tree past what it walks on the event loop, going on through the pool mid-walk", async () => {
    const root = folder();
    // More entries than the loop's share (`syncCalls`): the walk is handed over inside a folder.
    fill(join(root, "large"), syncCalls);
    mkdirSync(join(root, "large", "nested", "last"));
    writeFileSync(join(root, "large", "nested", "last", "file"), "x");
    await removeTree(join(root, "large"));
    expect(existsSync(join(root, "large"))).toBe(false);
  });

  it("removes empty folders on the event loop where freeing waits for nothing (tmpfs), files and a discarding mount's folders through the pool", async () => {
    /** Folders only (`files` false), or with a file in the deepest. */
    const where = (parent: string, files: boolean): string => {
      const dir = mkdtempSync(join(parent, "runyard-remove-tree-"));
      made.push(dir);
      mkdirSync(join(dir, "tree", "a", "b", "c"), { recursive: true });
      mkdirSync(join(dir, "tree", "d"));
      if (files) writeFileSync(join(dir, "tree", "a", "b", "c", "file"), "x");
      return join(dir, "tree");
    };
    // /dev/shm is a tmpfs: a tree of folders goes whole before removeTree first waits.
    const folders = where("/dev/shm", false);
    expect(freesSlowly(statSync(folders).dev)).toBe(false);
    const removing = removeTree(folders);
    expect(existsSync(folders)).toBe(false);
    expect(await removing).toBe(true);
    // A file's unlink always goes through the pool: a step chooses its size (2 GiB took 0.7 s here).
    // The pool's thread may have unlinked it already; the folders above wait for its answer.
    const withFile = where("/dev/shm", true);
    const pendingFile = removeTree(withFile);
    expect(existsSync(join(withFile, "a", "b", "c"))).toBe(true);
    expect(await pendingFile).toBe(true);
    expect(existsSync(withFile)).toBe(false);
    // Where the runner's temp folder lies: as its mount says (ext4 with `discard` on the machine
    // these were measured on, where each rmdir waits for the disk), through the pool or not.
    const local = where(tmpdir(), false);
    const pending = removeTree(local);
    expect(existsSync(local)).toBe(freesSlowly(statSync(local).dev));
    expect(await pending).toBe(true);
    expect(existsSync(local)).toBe(false);
  });

  it("lists a folder of many entries through the pool, not on the event loop", async () => {
    const root = folder();
    // A step's folder of 200,000 names kept the loop 0.3 to 0.9 s in one readdirSync, the first
    // of the walk; through the pool, its longest turn was 8 to 15 ms.
    // 1,000 names of 100 bytes: a folder past the 64 KiB the walk lists on the loop.
    for (let i = 0; i < 1000; i++) writeFileSync(join(root, `${i}-${"f".repeat(96)}`), "");
    const listedOnLoop: number[] = [];
    const real = fs.readdirSync;
    fs.readdirSync = ((...args: Parameters<typeof real>) => {
      const names = real(...args);
      listedOnLoop.push(names.length);
      return names;
    }) as typeof real;
    syncBuiltinESMExports();
    try {
      expect(await removeTree(root)).toBe(true);
    } finally {
      fs.readdirSync = real;
      syncBuiltinESMExports();
    }
    expect(listedOnLoop).toEqual([]);
  }, 120_000);

  it("removes links, never what they point to, at the top and inside", async () => {
    const root = folder();
    const victim = join(root, "victim");
    fill(victim, 5);
    mkdirSync(join(root, "tree"));
    symlinkSync(victim, join(root, "tree", "to-victim"));
    symlinkSync(join(victim, "f0"), join(root, "tree", "to-file"));
    symlinkSync(victim, join(root, "top-link"));
    await removeTree(join(root, "tree"));
    await removeTree(join(root, "top-link"));
    expect(readdirSync(root)).toEqual(["victim"]);
    expect(readdirSync(victim).length).toBe(6);
    expect(existsSync(join(victim, "nested", "deeper", "f4"))).toBe(true);
  });

  it("empties no folder a writer swaps in for a link while it walks", async () => {
    const root = folder();
    const victim = join(root, "victim");
    fill(victim, 50);
    const names = readdirSync(victim).sort();
    // A writer beside the removal exchanges the folder with a link to the victim (renameat2
    // RENAME_EXCHANGE, atomic) as fast as it can, as a step of the same run would.
    for (let round = 0; round < 20; round++) {
      const target = join(root, `out-${round}`);
      fill(target, 50);
      symlinkSync(victim, `${target}.lnk`);
      const swapper = spawn(
        "perl",
        [
          "-e",
          "my ($dir, $link) = @ARGV; my $swaps = 0; while (1) { $swaps++ if syscall(316, -100, $dir, -100, $link, 2) == 0; }",
          target,
          `${target}.lnk`,
        ],
        { stdio: "ignore" },
      );
      // Ended with the test, even one that timed out (its body runs on).
      onTestFinished(() => void swapper.kill("SIGKILL"));
      await new Promise((resolve) => swapper.once("spawn", resolve));
      await removeTree(target).catch(() => undefined);
      swapper.kill("SIGKILL");
      await new Promise((resolve) => swapper.once("exit", resolve));
      expect(readdirSync(victim).sort(), `round ${round}`).toEqual(names);
      expect(readdirSync(join(victim, "nested", "deeper")).length).toBe(50);
    }
    // Twenty removals, each raced by a writer that takes a core: past 30 s beside a whole suite
    // on a slow host.
  }, 120_000);

  it("removes a tree a step made hundreds of folders deep, past any path, holding a bounded number of descriptors", async () => {
    const root = folder();
    // As a step can make it: one folder inside the next, each named relative to the last, three
    // times deeper than the walk holds folders open (maxRemoveDepth), the whole path three times
    // longer than a path can be (PATH_MAX): `rm -r` cannot name what lies deep.
    execFileSync(
      "perl",
      [
        "-e",
        `for (1..400) { mkdir "${"d".repeat(30)}" or die; chdir "${"d".repeat(30)}" or die } open F, ">f"`,
      ],
      {
        cwd: root,
      },
    );
    const open = () => readdirSync("/proc/self/fd").length;
    const before = open();
    let most = before;
    const sampler = setInterval(() => {
      most = Math.max(most, open());
    }, 1);
    try {
      expect(await removeTree(join(root, "d".repeat(30)))).toBe(true);
    } finally {
      clearInterval(sampler);
    }
    // Each folder on the way was held open until emptied: the runner would have held 3000.
    expect(most - before).toBeLessThan(maxRemoveDepth + 50);
    expect(readdirSync(root)).toEqual([]);
    // Each folder a few calls through the pool: seconds on a loaded 2-core host.
  }, 120_000);

  it("removes folders a step made unreadable or unwritable, as their owner, no root", async () => {
    const root = folder();
    execFileSync(
      "sh",
      ["-c", "mkdir -p r/a/b r/c && touch r/a/b/f r/c/g && chmod 000 r/a r/a/b && chmod 500 r/c"],
      {
        cwd: root,
      },
    );
    // As a runner not root: the step's files are its own user's (the sandbox maps it so).
    const asRoot = process.geteuid?.() === 0;
    if (asRoot) execFileSync("chown", ["-R", "65534:65534", root]);
    if (asRoot) process.seteuid?.(65534);
    try {
      expect(await removeTree(join(root, "r"))).toBe(true);
    } finally {
      if (asRoot) process.seteuid?.(0);
    }
    expect(readdirSync(root)).toEqual([]);
  });

  it("removes names that are not UTF-8", async () => {
    const root = folder();
    execFileSync(
      "perl",
      ["-e", 'mkdir "a\\xff" or die; open F, ">a\\xff/b\\xfe" or die; open G, ">c\\xc3" or die'],
      {
        cwd: root,
      },
    );
    expect(await removeTree(root)).toBe(true);
    expect(existsSync(root)).toBe(false);
  });
});
