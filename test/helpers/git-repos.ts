import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { tempDir } from "./cli.js";

/** A bare repo at `path` whose `main` holds one empty commit: the remote an agent task pushes to. */
export function seedBareRepo(path: string): string {
  execFileSync("git", ["init", "--bare", "-q", "-b", "main", path]);
  const work = join(tempDir("runyard-seed-"), "work");
  execFileSync("git", ["init", "-q", "-b", "main", work]);
  execFileSync("git", [
    "-C",
    work,
    "-c",
    "user.name=t",
    "-c",
    "user.email=t@t",
    "commit",
    "-q",
    "--allow-empty",
    "-m",
    "start",
  ]);
  execFileSync("git", ["-C", work, "push", "-q", path, "main"]);
  return path;
}

/** `git ARGS` in `cwd`, its stdout. */
export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
  });
}
