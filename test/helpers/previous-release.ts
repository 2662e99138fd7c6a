import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { releases } from "../../src/store/migrations/releases.js";
import { repoRoot } from "./cli.js";

/** The release before today's (src/store/migrations/releases.ts): the commit it was cut from, and its version. */
const previous = releases.at(-2);
if (!previous) throw new Error("releases.ts lists no release before today's");
export const previousReleaseCommit = previous.commit;
export const previousReleaseVersion = previous.version;
/** The newest migration the previous release applies. */
export const previousReleaseNewestMigration = previous.newestMigration;

const run = promisify(execFile);

export interface PreviousRelease {
  /** The built release's folder: its own src/, dist/ and bin/. */
  dir: string;
  /** Its `bin/runyard.js`, to spawn as `node BIN ...`. */
  bin: string;
  version: string;
  commit: string;
}

/** Written last into a finished build, so a folder without it is never taken for one. */
const finishedMarker = ".runyard-release-built";

let building: Promise<PreviousRelease> | undefined;

/**
 * The previous release built from this repository's own history, in a folder of the temp folder
 * named by its commit (and by the checkout's lock, when it borrows the checkout's node_modules):
 * built once, then shared by every test file of this run and of later runs. Files in parallel
 * workers may race to build it: each builds in a folder of its own and renames it into place; the
 * first rename wins, and the others remove theirs and take the winner's.
 */
export function previousRelease(): Promise<PreviousRelease> {
  building ??= buildPreviousRelease().catch((error: unknown) => {
    building = undefined;
    throw error;
  });
  return building;
}

async function buildPreviousRelease(): Promise<PreviousRelease> {
  const commit = previousReleaseCommit;
  await commitPresent(commit);
  const lock = readFileSync(join(repoRoot, "package-lock.json"));
  const releaseLock = (await git(["show", `${commit}:package-lock.json`], "buffer")) as Buffer;
  const linked = covers(lock, releaseLock);
  // A folder that borrows node_modules is good only while the checkout's lock is what it was.
  const lockPart = linked ? `-${createHash("sha256").update(lock).digest("hex").slice(0, 8)}` : "";
  const dir = join(tmpdir(), `runyard-release-${commit.slice(0, 12)}${lockPart}`);
  const release = { dir, bin: join(dir, "bin", "runyard.js"), version: previousReleaseVersion, commit };
  if (existsSync(join(dir, finishedMarker))) return release;

  const staging = mkdtempSync(join(tmpdir(), `runyard-release-building-${commit.slice(0, 12)}-`));
  try {
    const tar = join(staging, "release.tar");
    const tree = join(staging, "tree");
    await git(["archive", "--format=tar", "-o", tar, commit]);
    mkdirSync(tree);
    await run("tar", ["-xf", tar, "-C", tree]);
    if (linked) {
      symlinkSync(realpathSync(join(repoRoot, "node_modules")), join(tree, "node_modules"));
    } else {
      process.stderr.write(
        `previous release ${previousReleaseVersion}: its package-lock.json differs; npm ci in ${tree}\n`,
      );
      await installReleasePackages(tree, lock, releaseLock);
    }
    const checkoutNative = join(repoRoot, "native", "build");
    if ((await nativeSourcesSame(commit)) && existsSync(checkoutNative)) {
      cpSync(checkoutNative, join(tree, "native", "build"), { recursive: true });
    } else {
      await run("sh", ["native/build.sh"], { cwd: tree, maxBuffer: 64 * 1024 ** 2 });
    }
    await run(process.execPath, ["build/build.js", "--force"], { cwd: tree, maxBuffer: 64 * 1024 ** 2 });
    writeFileSync(join(tree, finishedMarker), `${commit}\n`);
    try {
      renameSync(tree, dir);
    } catch (error) {
      // Another worker's rename came first (the folder exists and is not empty): take its build.
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== "ENOTEMPTY" && code !== "EEXIST") || !existsSync(join(dir, finishedMarker))) throw error;
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return release;
}

/**
 * Whether the checkout's lock installs every package the release's does, each as the release's
 * lock has it (runyard's own entry aside, which each release changes): then the release runs on
 * the checkout's node_modules, whatever packages the checkout added since (it never loads them).
 */
function covers(lock: Buffer, releaseLock: Buffer): boolean {
  const checkout = packagesOf(lock);
  return Object.entries(packagesOf(releaseLock)).every(
    ([path, entry]) => path === "" || JSON.stringify(checkout[path]) === JSON.stringify(entry),
  );
}

function packagesOf(lock: Buffer): Record<string, { hasInstallScript?: boolean } | undefined> {
  return (
    (JSON.parse(lock.toString("utf8")) as { packages?: Record<string, { hasInstallScript?: boolean }> })
      .packages ?? {}
  );
}

/**
 * The release's own packages, as its lock has them (`npm ci`), their install scripts run after:
 * better-sqlite3's compiled module is the checkout's where both locks pin the same package. Its
 * compile from source, where no prebuilt binary can be fetched, was most of the install: over ten
 * minutes on a fresh 2-core machine with the suite running, past the first upgrade file's start.
 */
async function installReleasePackages(tree: string, lock: Buffer, releaseLock: Buffer): Promise<void> {
  const options = { cwd: tree, maxBuffer: 64 * 1024 ** 2 };
  await run("npm", ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], options);
  const sqlite = "node_modules/better-sqlite3";
  const compiled = join("build", "Release", "better_sqlite3.node");
  const release = packagesOf(releaseLock);
  const same =
    JSON.stringify(packagesOf(lock)[sqlite]) === JSON.stringify(release[sqlite]) &&
    existsSync(join(repoRoot, sqlite, compiled));
  if (same) {
    mkdirSync(join(tree, sqlite, "build", "Release"), { recursive: true });
    cpSync(join(repoRoot, sqlite, compiled), join(tree, sqlite, compiled));
  }
  const scripted = Object.entries(release)
    .filter(([path, entry]) => path.startsWith("node_modules/") && entry?.hasInstallScript)
    .map(([path]) => path.slice("node_modules/".length))
    .filter((name) => !(same && name === "better-sqlite3"));
  if (scripted.length > 0) await run("npm", ["rebuild", ...scripted], options);
}

async function git(args: string[], encoding: "utf8" | "buffer" = "utf8"): Promise<string | Buffer> {
  const { stdout } = await run("git", args, { cwd: repoRoot, encoding, maxBuffer: 64 * 1024 ** 2 });
  return stdout;
}

/** Throws, saying how to fix it, when the checkout lacks the commit (a shallow clone). */
async function commitPresent(commit: string): Promise<void> {
  try {
    await git(["cat-file", "-e", `${commit}^{commit}`]);
  } catch {
    throw new Error(
      `the previous release ${previousReleaseVersion} (commit ${commit}) is not in the checkout at ${repoRoot}: ` +
        "it is a shallow clone, or was cloned without that history. Fetch it with `git fetch --unshallow` " +
        `(or \`git fetch origin ${commit}\`) and run the tests again.`,
    );
  }
}

/** Whether native/'s sources at `commit` are those of the checkout's work tree. */
async function nativeSourcesSame(commit: string): Promise<boolean> {
  try {
    await git(["diff", "--quiet", commit, "--", "native"]);
    return true;
  } catch {
    return false;
  }
}
