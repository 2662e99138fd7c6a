import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { foreignGitlinks } from "./nested-repos.js";

const dir = mkdtempSync(join(tmpdir(), "runyard-nested-repos-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function repo(path: string, bare = false): string {
  execFileSync("git", ["init", "-q", ...(bare ? ["--bare"] : []), path]);
  return path;
}

describe("gitlinks of repos nested in a task's worktree", () => {
  const worktree = join(dir, "worktree");
  const taskRepo = repo(join(dir, "task.git"), true);
  const elsewhere = repo(join(dir, "elsewhere.git"), true);
  mkdirSync(worktree);

  it("keeps a repo the task made in its worktree, and a gitlink with no .git at all", () => {
    repo(join(worktree, "own"));
    mkdirSync(join(worktree, "uninitialised"));
    expect(foreignGitlinks(worktree, ["own", "uninitialised"], taskRepo)).toEqual([]);
  });

  it("keeps a submodule whose git folder the task's repo holds", () => {
    const modules = repo(join(taskRepo, "modules", "sub"), true);
    mkdirSync(join(worktree, "sub"));
    writeFileSync(join(worktree, "sub", ".git"), `gitdir: ${modules}\n`);
    expect(foreignGitlinks(worktree, ["sub"], taskRepo)).toEqual([]);
  });

  it("drops one whose .git file, commondir or links lead to another repo of the machine", () => {
    mkdirSync(join(worktree, "pointer"));
    writeFileSync(join(worktree, "pointer", ".git"), `gitdir: ${elsewhere}\n`);
    // Relative, through the task's repo and out again.
    mkdirSync(join(worktree, "relative"));
    writeFileSync(join(worktree, "relative", ".git"), `gitdir: ../../task.git/../elsewhere.git\n`);
    writeFileSync(join(repo(join(worktree, "common")), ".git", "commondir"), `${elsewhere}\n`);
    const linkedHead = repo(join(worktree, "linked-head"));
    rmSync(join(linkedHead, ".git", "HEAD"));
    symlinkSync(join(elsewhere, "HEAD"), join(linkedHead, ".git", "HEAD"));
    const linkedRef = repo(join(worktree, "linked-ref"));
    symlinkSync(join(elsewhere, "refs", "heads"), join(linkedRef, ".git", "refs", "heads", "main"));
    mkdirSync(join(worktree, "linked-dotgit"));
    symlinkSync(elsewhere, join(worktree, "linked-dotgit", ".git"));
    // A submodule-like folder in the task's repo whose own commondir leads out.
    const borrowed = repo(join(taskRepo, "modules", "borrowed"), true);
    writeFileSync(join(borrowed, "commondir"), `${elsewhere}\n`);
    mkdirSync(join(worktree, "borrowed"));
    writeFileSync(join(worktree, "borrowed", ".git"), `gitdir: ${borrowed}\n`);
    const all = ["pointer", "relative", "common", "linked-head", "linked-ref", "linked-dotgit", "borrowed"];
    expect(foreignGitlinks(worktree, all, taskRepo)).toEqual(all);
  });
});
