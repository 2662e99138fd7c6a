import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { copyTaskFiles } from "./copied-files.js";

let root: string;
let files: string;
let worktree: string;
let outside: string;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), "runyard-copied-"));
  files = join(root, "files");
  worktree = join(root, "worktree");
  outside = join(root, "outside");
  mkdirSync(join(files, "config"), { recursive: true });
  mkdirSync(outside);
  writeFileSync(join(files, ".env"), "KEY=value\n");
  writeFileSync(join(files, "config", "local.json"), "{}\n");
  writeFileSync(join(outside, "secret"), "not yours\n");
  symlinkSync(join(outside, "secret"), join(files, "leak"));
  execFileSync("git", ["init", "-q", worktree]);
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const copy = (names: string[]) => copyTaskFiles(names, files, worktree, () => {});

describe("copy_files", () => {
  it("copies files of the runner's folder into the worktree at the same path, and keeps them out of commits", async () => {
    const said: string[] = [];
    await copyTaskFiles([".env", "config/local.json"], files, worktree, (line) => said.push(line));
    expect(readFileSync(join(worktree, ".env"), "utf8")).toBe("KEY=value\n");
    expect(readFileSync(join(worktree, "config", "local.json"), "utf8")).toBe("{}\n");
    expect(said).toEqual([
      "copied .env from the runner's agent_files_dir",
      "copied config/local.json from the runner's agent_files_dir",
    ]);
    const status = execFileSync("git", ["status", "--porcelain", "--untracked-files=all"], {
      cwd: worktree,
      encoding: "utf8",
    });
    expect(status).toBe("");
  });

  it("refuses .., absolute paths, a link leading out of the folder, a folder, and a missing folder", async () => {
    await expect(copy(["../outside/secret"])).rejects.toMatchObject({ code: "AGENT_FILES_NOT_ALLOWED" });
    await expect(copy([join(outside, "secret")])).rejects.toMatchObject({ code: "AGENT_FILES_NOT_ALLOWED" });
    await expect(copy(["leak"])).rejects.toMatchObject({
      code: "AGENT_FILES_NOT_ALLOWED",
      message: expect.stringContaining("symbolic link leading out"),
    });
    await expect(copy(["config"])).rejects.toMatchObject({ message: expect.stringContaining("not a file") });
    await expect(copy(["nope"])).rejects.toMatchObject({ message: expect.stringContaining("is not in") });
    await expect(copyTaskFiles([".env"], undefined, worktree, () => {})).rejects.toMatchObject({
      message: expect.stringContaining("no agent_files_dir"),
    });
    expect(existsSync(join(worktree, "leak"))).toBe(false);
  });

  it("never writes through a link the repository holds: into a linked folder, or onto a linked file", async () => {
    symlinkSync(outside, join(worktree, "config"));
    await expect(copy(["config/local.json"])).rejects.toMatchObject({
      code: "AGENT_FILES_NOT_ALLOWED",
      message: expect.stringContaining("symbolic link"),
    });
    expect(existsSync(join(outside, "local.json"))).toBe(false);
    symlinkSync(join(outside, "secret"), join(worktree, ".env"));
    await expect(copy([".env"])).rejects.toMatchObject({ code: "AGENT_FILES_NOT_ALLOWED" });
    expect(readFileSync(join(outside, "secret"), "utf8")).toBe("not yours\n");
  });
});

describe("copy_files into a task's own cwd swapped for a link after the runner checked it", () => {
  it("is refused by the runner's folder check asked again on where the folder leads now: nothing is written there", async () => {
    // The task's cwd as the runner checked it (a folder under its roots), then swapped by a step
    // beside it for a link to a folder outside them (another run's folder, the runner's home).
    const checked = join(root, "allowed", "team");
    mkdirSync(join(root, "allowed"));
    symlinkSync(outside, checked);
    const check = (real: string) =>
      real.startsWith(`${join(root, "allowed")}/`) ? undefined : `cwd leads to ${real}, outside the roots`;
    await expect(copyTaskFiles([".env"], files, checked, () => {}, check)).rejects.toMatchObject({
      code: "AGENT_CWD_NOT_ALLOWED",
    });
    expect(existsSync(join(outside, ".env"))).toBe(false);
  });
});
