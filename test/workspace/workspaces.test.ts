import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import {
  chmodSync,
  existsSync,
  lutimesSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunyardError } from "../../src/core/errors.js";
import { processStartTime } from "../../src/core/pid-lock.js";
import type { AllocateRequest } from "../../src/workspace/types.js";
import { Workspaces } from "../../src/workspace/workspaces.js";
import { type GitHttpServer, startGitHttpServer } from "./git-http-server.js";

const dir = mkdtempSync(join(tmpdir(), "runyard-workspaces-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const retry = { gitRetries: 3, baseDelayMs: 5 };
const gitEnv = {
  PATH: process.env.PATH ?? "/usr/bin:/bin",
  HOME: dir,
  GIT_CONFIG_NOSYSTEM: "1",
  LC_ALL: "C",
};

function git(args: string[], cwd?: string): string {
  return execFileSync("git", args, { cwd, env: gitEnv, encoding: "utf8" }).trim();
}

let remotes = 0;
/** A bare remote whose `main` has one commit: a text file and a binary one. */
function seedRemote(parent = dir): string {
  const name = `remote-${++remotes}.git`;
  const bare = join(parent, name);
  git(["init", "--quiet", "--bare", "--initial-branch=main", bare]);
  const seed = mkdtempSync(join(dir, "seed-"));
  git(["init", "--quiet", "--initial-branch=main", seed]);
  writeFileSync(join(seed, "README.md"), "# demo\n\nline two\nline three\n");
  writeFileSync(join(seed, "logo.bin"), Buffer.from([0, 1, 2, 3, 0, 255]));
  git(["add", "."], seed);
  git(["-c", "user.name=seed", "-c", "user.email=seed@test", "commit", "--quiet", "-m", "seed"], seed);
  git(["push", "--quiet", bare, "main"], seed);
  rmSync(seed, { recursive: true, force: true });
  return bare;
}

let roots = 0;
function newWorkspaces(root = join(dir, `root-${++roots}`)): Workspaces {
  return new Workspaces({ root, retry, env: gitEnv });
}

function request(repoUrl: string, fields: Partial<AllocateRequest> & { key: string }): AllocateRequest {
  return { repoUrl, branch: `runyard/${fields.key}`, ...fields };
}

async function caught(promise: Promise<unknown>): Promise<RunyardError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof RunyardError) return error;
    throw error;
  }
  throw new Error("expected a RunyardError, got none");
}

function worktreeList(mirror: string): string[] {
  return git(["--git-dir", mirror, "worktree", "list", "--porcelain"])
    .split("\n")
    .filter((line) => line.startsWith("worktree "));
}

describe("workspaces on a local bare remote", () => {
  it("a change committed in the worktree and pushed is on the remote's branch", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const progress: string[] = [];
    const ws = await workspaces.allocate(
      request(bare, {
        key: "run-1",
        author: { name: "Ada", email: "ada@example.com" },
        onProgress: (line) => progress.push(line),
      }),
    );
    expect(ws.base).toBe("main");
    expect(ws.baseCommit).toBe(git(["--git-dir", bare, "rev-parse", "main"]));
    expect(ws.path).toBe(join(workspaces.mirrorFor(bare), "..", "..", "worktrees", "run-1"));
    expect(progress[0]).toBe(`fetching ${bare} (attempt 1 of 4)`);

    expect(await ws.commitAll("nothing yet")).toBeNull();
    writeFileSync(join(ws.path, "hello.txt"), "hello\n");
    const committed = await ws.commitAll("Add hello");
    expect(committed?.commit).toMatch(/^[0-9a-f]{40}$/);
    await ws.push();

    expect(git(["--git-dir", bare, "log", "--format=%H %an <%ae> %s", "runyard/run-1"]).split("\n")).toEqual([
      `${committed?.commit} Ada <ada@example.com> Add hello`,
      expect.stringMatching(/ seed <seed@test> seed$/),
    ]);
    await ws.release();
    expect(existsSync(ws.path)).toBe(false);
    await ws.release(); // idempotent
  });

  it("the diff covers committed, uncommitted and new files, binary ones included, and matches the remote", async () => {
    const bare = seedRemote();
    const ws = await newWorkspaces().allocate(request(bare, { key: "diff" }));
    writeFileSync(join(ws.path, "README.md"), "# demo\n\nline two changed\nline three\nline four\n");
    await ws.commitAll("Edit the readme");
    writeFileSync(join(ws.path, "logo.bin"), Buffer.from([9, 0, 8, 7]));
    writeFileSync(join(ws.path, "new.txt"), "a\nb\n");
    mkdirSync(join(ws.path, "src"));
    writeFileSync(join(ws.path, "src", "main.ts"), "export {};\n");

    const { patch, stats } = await ws.diff();
    expect(stats).toEqual({ files: 4, insertions: 5, deletions: 1 });
    expect(patch).toContain("+line two changed");
    expect(patch).toContain("GIT binary patch");
    expect(patch).toContain("+++ b/src/main.ts");
    // Taking the diff left the worktree's own index alone: the new files are still untracked.
    expect(git(["status", "--porcelain"], ws.path)).toContain("?? new.txt");

    await ws.commitAll("The rest");
    await ws.push();
    expect(git(["--git-dir", bare, "diff", "--numstat", ws.baseCommit, ws.branch])).toBe(
      git(["diff", "--numstat", ws.baseCommit, "HEAD"], ws.path),
    );
    const remote = git(["--git-dir", bare, "diff", "--numstat", ws.baseCommit, ws.branch]).split("\n");
    expect(remote).toHaveLength(stats.files);
    expect(await ws.diff()).toEqual({ patch, stats });
    await ws.release();
  });

  it("a repo the agent made in a new folder without a commit stays out of the commit, and the rest is committed", async () => {
    const bare = seedRemote();
    const ws = await newWorkspaces().allocate(
      request(bare, { key: "empty-nested", author: { name: "Ada", email: "ada@example.com" } }),
    );
    writeFileSync(join(ws.path, "hello.txt"), "hello\n");
    mkdirSync(join(ws.path, "scaffold"));
    git(["init", "-q"], join(ws.path, "scaffold"));
    writeFileSync(join(ws.path, "scaffold", "app.txt"), "app\n");
    const { patch } = await ws.diff();
    expect(patch).toContain("hello.txt");
    expect(patch).not.toContain("scaffold");
    const committed = await ws.commitAll("Add hello");
    expect(git(["ls-tree", "--name-only", committed?.commit ?? "HEAD"], ws.path).split("\n")).toContain(
      "hello.txt",
    );
    expect(git(["ls-tree", "--name-only", committed?.commit ?? "HEAD"], ws.path)).not.toContain("scaffold");
    await ws.release();
  });

  it("two allocations on one repo at once get separate worktrees on their own branches", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const [a, b] = await Promise.all([
      workspaces.allocate(request(bare, { key: "a" })),
      workspaces.allocate(request(bare, { key: "b" })),
    ]);
    expect(a?.path).not.toBe(b?.path);
    writeFileSync(join(a!.path, "only-a.txt"), "a\n");
    expect(existsSync(join(b!.path, "only-a.txt"))).toBe(false);
    expect(git(["branch", "--show-current"], a!.path)).toBe("runyard/a");
    expect(git(["branch", "--show-current"], b!.path)).toBe("runyard/b");
    await Promise.all([a!.release(), b!.release()]);
  });

  it("8 allocations at once on one repo all succeed, and releasing them leaves only the mirror", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const keys = Array.from({ length: 8 }, (_, i) => `many-${i}`);
    const all = await Promise.all(keys.map((key) => workspaces.allocate(request(bare, { key }))));
    expect(new Set(all.map((ws) => ws.path)).size).toBe(8);
    const mirror = workspaces.mirrorFor(bare);
    // Each worktree belongs to a repo of its own, none to the mirror.
    expect(worktreeList(mirror)).toEqual([`worktree ${mirror}`]);
    const repos = all.map((ws) => git(["rev-parse", "--path-format=absolute", "--git-common-dir"], ws.path));
    expect(new Set(repos).size).toBe(8);
    for (const repo of repos) expect(repo).not.toBe(mirror);
    await Promise.all(
      all.map(async (ws, i) => {
        writeFileSync(join(ws.path, `file-${i}.txt`), `${i}\n`);
        await ws.commitAll(`Change ${i}`);
        await ws.push();
      }),
    );
    await Promise.all(all.map((ws) => ws.release()));
    expect(readdirSync(join(mirror, "..", "..", "worktrees"))).toEqual([]);
    expect(readdirSync(join(mirror, "..", "..", "task-repos"))).toEqual([]);
    for (const key of keys) {
      const pushed = git(["--git-dir", bare, "rev-parse", "--verify", `runyard/${key}`]);
      // Kept in the key's own repo for a follow-up turn; the mirror pins only where it started.
      const kept = join(mirror, "..", "..", "kept", `${key}.git`);
      expect(git(["--git-dir", kept, "rev-parse", `refs/heads/runyard/${key}`])).toBe(pushed);
      expect(git(["--git-dir", kept, "fsck", "--no-progress"])).toBe("");
      expect(() => git(["--git-dir", mirror, "cat-file", "-e", pushed])).toThrow();
    }
    expect(git(["--git-dir", mirror, "fsck", "--no-progress"])).toBe("");
  });

  it("a follow-up turn with reuse continues the branch where the last turn left it", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const first = await workspaces.allocate(request(bare, { key: "conv-1", branch: "feature" }));
    writeFileSync(join(first.path, "turn1.txt"), "one\n");
    const turn1 = await first.commitAll("Turn 1");
    await first.release();

    const second = await workspaces.allocate(
      request(bare, { key: "conv-1", branch: "feature", reuse: true }),
    );
    expect(second.path).toBe(first.path);
    expect(readFileSync(join(second.path, "turn1.txt"), "utf8")).toBe("one\n");
    expect(git(["rev-parse", "HEAD"], second.path)).toBe(turn1?.commit);
    expect(second.baseCommit).toBe(first.baseCommit);
    writeFileSync(join(second.path, "turn2.txt"), "two\n");
    await second.commitAll("Turn 2");
    await second.push();
    expect(git(["--git-dir", bare, "log", "--format=%s", "feature"]).split("\n")).toEqual([
      "Turn 2",
      "Turn 1",
      "seed",
    ]);
    expect((await second.diff()).stats.files).toBe(2);
    await second.release();
  });

  it("a branch already on the remote is refused unless the allocation reuses it", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const error = await caught(workspaces.allocate(request(bare, { key: "taken", branch: "main" })));
    expect(error.code).toBe("WORKSPACE_BRANCH_EXISTS");
    expect(error.hint).toMatch(/another branch name/);
    expect(existsSync(join(workspaces.mirrorFor(bare), "..", "..", "worktrees", "taken"))).toBe(false);
    // The refused key is free again.
    const ws = await workspaces.allocate(request(bare, { key: "taken", branch: "main", reuse: true }));
    expect(git(["rev-parse", "HEAD"], ws.path)).toBe(git(["--git-dir", bare, "rev-parse", "main"]));
    await ws.release();
  });

  it("a base the remote does not have is WORKSPACE_BASE_MISSING, naming the branches it has", async () => {
    const bare = seedRemote();
    const error = await caught(newWorkspaces().allocate(request(bare, { key: "nobase", base: "develop" })));
    expect(error.code).toBe("WORKSPACE_BASE_MISSING");
    expect(error.message).toBe(`the base branch develop is not on ${bare}; it has main`);
  });

  it("a key held by a live workspace is refused with WORKSPACE_IN_USE", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const ws = await workspaces.allocate(request(bare, { key: "busy" }));
    const error = await caught(workspaces.allocate(request(bare, { key: "busy", branch: "other" })));
    expect(error.code).toBe("WORKSPACE_IN_USE");
    await ws.release();
  });

  it("release removes a worktree in which the agent left read-only folders (a Go module cache)", async () => {
    const bare = seedRemote();
    const ws = await newWorkspaces().allocate(request(bare, { key: "read-only" }));
    const cache = join(ws.path, "gomod", "example.com", "m@v1.0.0");
    mkdirSync(cache, { recursive: true });
    writeFileSync(join(cache, "go.mod"), "module m\n");
    chmodSync(cache, 0o555);
    chmodSync(join(ws.path, "gomod"), 0o555);
    await ws.release();
    expect(existsSync(ws.path)).toBe(false);
  });

  it("cleanLeftovers removes the worktrees a crashed runner left and prunes the mirror", async () => {
    const bare = seedRemote();
    const root = join(dir, "crashed-root");
    const crashed = newWorkspaces(root);
    const left = await crashed.allocate(request(bare, { key: "left-behind" }));
    await crashed.allocate(request(bare, { key: "left-too" }));
    writeFileSync(join(left.path, "unsaved.txt"), "lost\n");
    // The runner process died here: nothing released its workspaces.

    const next = newWorkspaces(root);
    expect(await next.cleanLeftovers()).toEqual([
      join(root, "worktrees", "left-behind"),
      join(root, "worktrees", "left-too"),
    ]);
    const mirror = next.mirrorFor(bare);
    expect(worktreeList(mirror)).toEqual([`worktree ${mirror}`]);
    expect(readdirSync(join(root, "task-repos"))).toEqual([]);
    expect(await next.cleanLeftovers()).toEqual([]);
    // The key is usable again, and the branch of the lost run can be cut anew.
    const again = await next.allocate(request(bare, { key: "left-behind" }));
    expect(existsSync(join(again.path, "unsaved.txt"))).toBe(false);
    await again.release();
  });

  it("a gc of the mirror keeps what a live task's repo borrows, though the remote dropped it", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const ws = await workspaces.allocate(request(bare, { key: "borrower" }));
    // The remote's main is rewritten: the task's base is on no branch of the remote any more.
    const other = mkdtempSync(join(dir, "rewrite-"));
    git(["init", "--quiet", "--initial-branch=main", other]);
    git(
      ["-c", "user.name=o", "-c", "user.email=o@test", "commit", "--quiet", "--allow-empty", "-m", "new"],
      other,
    );
    git(["push", "--quiet", "--force", bare, "main"], other);
    // Another task's fetch prunes the mirror's copy of main; then the mirror's garbage goes.
    const next = await workspaces.allocate(request(bare, { key: "after-rewrite" }));
    await next.release();
    const mirror = workspaces.mirrorFor(bare);
    git(["--git-dir", mirror, "gc", "--quiet", "--prune=now"]);
    expect(git(["--git-dir", mirror, "rev-parse", "origin/main"])).not.toBe(ws.baseCommit);
    writeFileSync(join(ws.path, "README.md"), "changed\n");
    expect(await ws.commitAll("Change")).not.toBeNull();
    expect((await ws.diff()).patch).toContain("-line two");
    expect(git(["fsck", "--no-progress", "--no-dangling"], ws.path)).toBe("");
    await ws.release();
    // The branch is kept for a follow-up, which finds it whole after another gc of the mirror.
    git(["--git-dir", mirror, "gc", "--quiet", "--prune=now"]);
    const followUp = await workspaces.allocate(request(bare, { key: "borrower", reuse: true }));
    expect(readFileSync(join(followUp.path, "README.md"), "utf8")).toBe("changed\n");
    expect(git(["fsck", "--no-progress", "--no-dangling"], followUp.path)).toBe("");
    await followUp.release();
  });

  it("a kept branch that merged a branch the remote later deleted survives a gc of the mirror", async () => {
    const bare = seedRemote();
    // A branch of the remote's that the agent merges, and that is deleted once merged.
    const side = mkdtempSync(join(dir, "side-"));
    git(["clone", "--quiet", bare, side]);
    writeFileSync(join(side, "side.txt"), "from the side branch\n");
    git(["add", "side.txt"], side);
    git(["-c", "user.name=s", "-c", "user.email=s@test", "commit", "--quiet", "-m", "side"], side);
    git(["push", "--quiet", "origin", "HEAD:refs/heads/side"], side);
    const sideCommit = git(["rev-parse", "HEAD"], side);
    const workspaces = newWorkspaces();
    const first = await workspaces.allocate(request(bare, { key: "merger" }));
    git(
      ["-c", "user.name=a", "-c", "user.email=a@test", "merge", "--quiet", "--no-edit", sideCommit],
      first.path,
    );
    writeFileSync(join(first.path, "mine.txt"), "mine\n");
    await first.commitAll("Mine");
    await first.release();
    git(["--git-dir", bare, "branch", "--quiet", "-D", "side"]);
    // Another task's fetch prunes the mirror's copy of it; then the mirror's garbage goes.
    const other = await workspaces.allocate(request(bare, { key: "pruner" }));
    await other.release();
    const mirror = workspaces.mirrorFor(bare);
    git(["--git-dir", mirror, "gc", "--quiet", "--prune=now"]);
    expect(() => git(["--git-dir", mirror, "cat-file", "-e", sideCommit])).toThrow();
    const followUp = await workspaces.allocate(request(bare, { key: "merger", reuse: true }));
    expect(readFileSync(join(followUp.path, "side.txt"), "utf8")).toBe("from the side branch\n");
    expect(git(["fsck", "--no-progress", "--no-dangling"], followUp.path)).toBe("");
    await followUp.release();
  });

  it("a push the remote refuses as not a fast-forward is WORKSPACE_PUSH_REJECTED, without retries", async () => {
    const bare = seedRemote();
    const progress: string[] = [];
    const ws = await newWorkspaces().allocate(
      request(bare, { key: "race", branch: "race", onProgress: (line) => progress.push(line) }),
    );
    writeFileSync(join(ws.path, "mine.txt"), "mine\n");
    await ws.commitAll("Mine");
    // Meanwhile someone else pushes to the same branch.
    const other = mkdtempSync(join(dir, "other-"));
    git(["clone", "--quiet", bare, other]);
    git(
      ["-c", "user.name=o", "-c", "user.email=o@test", "commit", "--quiet", "--allow-empty", "-m", "Theirs"],
      other,
    );
    git(["push", "--quiet", "origin", "HEAD:refs/heads/race"], other);

    const error = await caught(ws.push());
    expect(error.code).toBe("WORKSPACE_PUSH_REJECTED");
    expect(error.message).toMatch(/rejected/);
    expect(progress.filter((line) => line.startsWith("pushing"))).toEqual([
      `pushing to ${bare} (attempt 1 of 4)`,
    ]);
    await ws.release();
  });

  it("runyard's own commit runs none of the repo's hooks", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const ws = await workspaces.allocate(request(bare, { key: "hooks" }));
    // What a repo's `npm install` (husky) does: point the shared config at a hook folder.
    const hooks = join(dir, "hooks-of-the-repo");
    mkdirSync(hooks, { recursive: true });
    for (const hook of ["pre-commit", "commit-msg", "post-commit", "pre-push"]) {
      writeFileSync(join(hooks, hook), `#!/bin/sh\ntouch ${join(hooks, `${hook}.ran`)}\nexit 1\n`, {
        mode: 0o755,
      });
    }
    git(["config", "core.hooksPath", hooks], ws.path);
    writeFileSync(join(ws.path, "x.txt"), "x\n");
    expect(await ws.commitAll("No hooks")).not.toBeNull();
    await ws.push();
    expect(readdirSync(hooks).filter((name) => name.endsWith(".ran"))).toEqual([]);
    await ws.release();
  });

  it("links left in the task repo's git folders are not followed by the runner's commit, diff, push or release", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const ws = await workspaces.allocate(request(bare, { key: "links", branch: "links" }));
    const gitDir = git(["rev-parse", "--absolute-git-dir"], ws.path);
    const common = git(["rev-parse", "--path-format=absolute", "--git-common-dir"], ws.path);
    const outside = mkdtempSync(join(dir, "outside-"));
    // Each link names a file outside, where git would write if it followed it.
    const link = (name: string, at: string) => {
      writeFileSync(join(outside, name), "precious\n");
      mkdirSync(join(at, ".."), { recursive: true });
      rmSync(at, { force: true });
      symlinkSync(join(outside, name), at);
    };
    link("editmsg", join(gitDir, "COMMIT_EDITMSG"));
    link("head-log", join(gitDir, "logs", "HEAD"));
    link("branch-log", join(common, "logs", "refs", "heads", "links"));
    link("diff-index", join(gitDir, "runyard-diff-index"));
    // An object folder linked elsewhere: the commit's objects would land there.
    const objects = mkdtempSync(join(dir, "objects-elsewhere-"));
    for (let i = 0; i < 256; i++) {
      const name = i.toString(16).padStart(2, "0");
      if (!existsSync(join(common, "objects", name))) symlinkSync(objects, join(common, "objects", name));
    }
    writeFileSync(join(ws.path, "x.txt"), "x\n");
    expect(await ws.commitAll("Links")).not.toBeNull();
    expect((await ws.diff()).stats.files).toBe(1);
    await ws.push();
    await ws.release();
    for (const name of readdirSync(outside))
      expect(readFileSync(join(outside, name), "utf8"), name).toBe("precious\n");
    expect(readdirSync(objects)).toEqual([]);
    expect(git(["--git-dir", bare, "show", "links:x.txt"])).toBe("x");
  });

  it("while another process holds the mirror the allocation waits, says so, and goes on once it is gone", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const holder = spawn("sleep", ["60"]);
    await once(holder, "spawn");
    const lock = `${workspaces.mirrorFor(bare)}.lock`;
    mkdirSync(join(lock, ".."), { recursive: true });
    writeFileSync(lock, `${holder.pid} ${processStartTime(holder.pid!)}`);

    let waiting = () => {};
    const saidWaiting = new Promise<void>((resolve) => {
      waiting = resolve;
    });
    const progress: string[] = [];
    const allocation = workspaces.allocate(
      request(bare, {
        key: "waits",
        onProgress: (line) => {
          progress.push(line);
          if (line.startsWith("waiting")) waiting();
        },
      }),
    );
    await saidWaiting;
    expect(progress).toEqual([
      `waiting for the mirror of ${bare}: process ${holder.pid} is fetching into it`,
    ]);
    holder.kill("SIGKILL");
    await once(holder, "exit");
    const ws = await allocation;
    expect(progress[1]).toBe(`fetching ${bare} (attempt 1 of 4)`);
    expect(existsSync(lock)).toBe(false);
    await ws.release();
  });

  it("a mirror lock left by a dead process is taken over", async () => {
    const bare = seedRemote();
    const workspaces = newWorkspaces();
    const dead = spawnSync("true").pid;
    const lock = `${workspaces.mirrorFor(bare)}.lock`;
    mkdirSync(join(lock, ".."), { recursive: true });
    writeFileSync(lock, `${dead} 12345`);
    const ws = await workspaces.allocate(request(bare, { key: "stale-lock" }));
    expect(existsSync(lock)).toBe(false);
    await ws.release();
  });
});

describe("kept branches expire 7 days after their conversation's last use", () => {
  const days = (n: number) => n * 24 * 3600 * 1000;
  const keptRepo = (root: string, key: string) => join(root, "kept", `${key}.git`);
  /** Sets a path's own times (never a link's target's) back by `ms`. */
  const untouchedFor = (path: string, ms: number) => {
    const then = new Date(Date.now() - ms);
    lutimesSync(path, then, then);
  };
  const pins = (mirror: string) =>
    git(["--git-dir", mirror, "for-each-ref", "--format=%(refname)", "refs/runyard/keys/"])
      .split("\n")
      .filter((ref) => ref !== "");

  /** A first turn of `key` that commits `<key>.txt` (and pushes it if asked), released. */
  async function firstTurn(workspaces: Workspaces, bare: string, key: string, push = false) {
    const ws = await workspaces.allocate(request(bare, { key }));
    writeFileSync(join(ws.path, `${key}.txt`), `${key}\n`);
    const made = await ws.commitAll(`Turn 1 of ${key}`);
    if (push) await ws.push();
    await ws.release();
    return made?.commit;
  }

  it("a kept branch untouched for more than 7 days is removed at the next start and its pin leaves the mirror; a recent one and its pin stay", async () => {
    const bare = seedRemote();
    const root = join(dir, "expiry-root");
    const first = newWorkspaces(root);
    await firstTurn(first, bare, "stale");
    const fresh = await firstTurn(first, bare, "fresh");
    // A task its runner died in: its repo goes at the next start, and no kept branch needs its pin.
    await first.allocate(request(bare, { key: "crashed" }));
    const mirror = first.mirrorFor(bare);
    expect(pins(mirror)).toEqual([
      "refs/runyard/keys/crashed/heads/runyard/crashed",
      "refs/runyard/keys/fresh/heads/runyard/fresh",
      "refs/runyard/keys/stale/heads/runyard/stale",
    ]);
    untouchedFor(keptRepo(root, "stale"), days(8));
    untouchedFor(keptRepo(root, "fresh"), days(6));

    const next = newWorkspaces(root);
    await next.cleanLeftovers();
    expect(readdirSync(join(root, "kept")).sort()).toEqual(["fresh.git", "stale.expired"]);
    expect(pins(mirror)).toEqual(["refs/runyard/keys/fresh/heads/runyard/fresh"]);
    expect(git(["--git-dir", mirror, "fsck", "--no-progress"])).toBe("");
    const followUp = await next.allocate(request(bare, { key: "fresh", reuse: true }));
    expect(git(["rev-parse", "HEAD"], followUp.path)).toBe(fresh);
    expect(readFileSync(join(followUp.path, "fresh.txt"), "utf8")).toBe("fresh\n");
    await followUp.release();
  });

  it("a follow-up that starts from its kept branch counts as a use: after its runner dies in that turn, the next start keeps the branch", async () => {
    const bare = seedRemote();
    const root = join(dir, "resumed-root");
    const turn1 = await firstTurn(newWorkspaces(root), bare, "resumed");
    untouchedFor(keptRepo(root, "resumed"), days(8));
    await newWorkspaces(root).allocate(request(bare, { key: "resumed", reuse: true }));
    // That runner died during the turn; the next one starts.

    const next = newWorkspaces(root);
    await next.cleanLeftovers();
    expect(existsSync(keptRepo(root, "resumed"))).toBe(true);
    expect(pins(next.mirrorFor(bare))).toEqual(["refs/runyard/keys/resumed/heads/runyard/resumed"]);
    const again = await next.allocate(request(bare, { key: "resumed", reuse: true }));
    expect(git(["rev-parse", "HEAD"], again.path)).toBe(turn1);
    await again.release();
  });

  it("the kept branches and pins of live tasks stay through a cleanup, however old", async () => {
    const bare = seedRemote();
    const root = join(dir, "live-root");
    const workspaces = newWorkspaces(root);
    await firstTurn(workspaces, bare, "live-follow-up");
    const followUp = await workspaces.allocate(request(bare, { key: "live-follow-up", reuse: true }));
    const firstOfItsKind = await workspaces.allocate(request(bare, { key: "live-first" }));
    untouchedFor(keptRepo(root, "live-follow-up"), days(8));

    await workspaces.cleanLeftovers();
    expect(readdirSync(join(root, "kept"))).toEqual(["live-follow-up.git"]);
    expect(pins(workspaces.mirrorFor(bare))).toEqual([
      "refs/runyard/keys/live-first/heads/runyard/live-first",
      "refs/runyard/keys/live-follow-up/heads/runyard/live-follow-up",
    ]);
    writeFileSync(join(followUp.path, "turn2.txt"), "two\n");
    const turn2 = await followUp.commitAll("Turn 2");
    await Promise.all([followUp.release(), firstOfItsKind.release()]);
    const turn3 = await workspaces.allocate(request(bare, { key: "live-follow-up", reuse: true }));
    expect(git(["rev-parse", "HEAD"], turn3.path)).toBe(turn2?.commit);
    expect(readFileSync(join(turn3.path, "live-follow-up.txt"), "utf8")).toBe("live-follow-up\n");
    await turn3.release();
  });

  it("a follow-up whose unpushed branch expired fails with WORKSPACE_BRANCH_EXPIRED, saying why and what to do", async () => {
    const bare = seedRemote();
    const root = join(dir, "expired-root");
    await firstTurn(newWorkspaces(root), bare, "gone");
    untouchedFor(keptRepo(root, "gone"), days(8));
    const next = newWorkspaces(root);
    await next.cleanLeftovers();

    const error = await caught(next.allocate(request(bare, { key: "gone", reuse: true })));
    expect(error.code).toBe("WORKSPACE_BRANCH_EXPIRED");
    expect(error.message).toBe(
      `the branch runyard/gone of this conversation expired: it was never pushed to ${bare}, and this runner keeps a conversation's branch 7 days after its last turn`,
    );
    expect(error.hint).toMatch(/^Submit a new run instead: the last turn's diff.patch artifact/);
    expect(existsSync(join(root, "worktrees", "gone"))).toBe(false);
    expect(pins(next.mirrorFor(bare))).toEqual([]);
    // The key is free: a new run cuts its branch from the base.
    const anew = await next.allocate(request(bare, { key: "gone" }));
    expect(git(["rev-parse", "HEAD"], anew.path)).toBe(git(["--git-dir", bare, "rev-parse", "main"]));
    await anew.release();
  });

  it("a follow-up whose pushed branch expired on the runner goes on from the remote's branch, and says so", async () => {
    const bare = seedRemote();
    const root = join(dir, "pushed-root");
    const pushed = await firstTurn(newWorkspaces(root), bare, "pushed", true);
    untouchedFor(keptRepo(root, "pushed"), days(8));
    const next = newWorkspaces(root);
    await next.cleanLeftovers();
    expect(existsSync(keptRepo(root, "pushed"))).toBe(false);

    const progress: string[] = [];
    const followUp = await next.allocate(
      request(bare, { key: "pushed", reuse: true, onProgress: (line) => progress.push(line) }),
    );
    expect(git(["rev-parse", "HEAD"], followUp.path)).toBe(pushed);
    expect(progress).toContain(
      `no branch runyard/pushed is kept on this runner for this conversation: going on from runyard/pushed as ${bare} has it`,
    );
    await followUp.release();
    expect(existsSync(keptRepo(root, "pushed"))).toBe(true);
  });

  /** Someone else with push rights to the remote makes (or replaces) `branch` there with a commit of theirs. */
  function plant(bare: string, branch: string, from = "main"): string {
    const other = mkdtempSync(join(dir, "planter-"));
    git(["clone", "--quiet", "--branch", from, bare, other]);
    writeFileSync(join(other, "planted.txt"), "someone else's work\n");
    git(["add", "planted.txt"], other);
    git(
      ["-c", "user.name=other", "-c", "user.email=other@test", "commit", "--quiet", "-m", "planted"],
      other,
    );
    git(["push", "--quiet", "--force", "origin", `HEAD:refs/heads/${branch}`], other);
    const commit = git(["rev-parse", "HEAD"], other);
    rmSync(other, { recursive: true, force: true });
    return commit;
  }

  it("a follow-up whose unpushed branch expired does not go on from a branch of that name someone else pushed to the remote", async () => {
    const bare = seedRemote();
    const root = join(dir, "planted-root");
    await firstTurn(newWorkspaces(root), bare, "victim");
    untouchedFor(keptRepo(root, "victim"), days(8));
    const next = newWorkspaces(root);
    await next.cleanLeftovers();
    // The conversation never pushed runyard/victim; another member who may push to the remote
    // makes it there, with a commit of theirs (tests or agent settings the turn would run).
    plant(bare, "runyard/victim");

    const error = await caught(next.allocate(request(bare, { key: "victim", reuse: true })));
    expect(error.code).toBe("WORKSPACE_BRANCH_EXPIRED");
    expect(existsSync(join(root, "worktrees", "victim"))).toBe(false);
    expect(pins(next.mirrorFor(bare))).toEqual([]);
  });

  it("a follow-up whose pushed branch expired does not go on from another history someone put in its place on the remote", async () => {
    const bare = seedRemote();
    const root = join(dir, "replaced-root");
    await firstTurn(newWorkspaces(root), bare, "replaced", true);
    untouchedFor(keptRepo(root, "replaced"), days(8));
    const next = newWorkspaces(root);
    await next.cleanLeftovers();
    plant(bare, "runyard/replaced");

    const error = await caught(next.allocate(request(bare, { key: "replaced", reuse: true })));
    expect(error.code).toBe("WORKSPACE_BRANCH_EXPIRED");
    expect(existsSync(join(root, "worktrees", "replaced"))).toBe(false);
  });

  it("a conversation that pushed once goes on from the remote's branch after each expiry, though its later turns did not push", async () => {
    const bare = seedRemote();
    const root = join(dir, "pushed-once-root");
    const pushed = await firstTurn(newWorkspaces(root), bare, "once", true);
    untouchedFor(keptRepo(root, "once"), days(8));
    await newWorkspaces(root).cleanLeftovers();
    const second = await newWorkspaces(root).allocate(request(bare, { key: "once", reuse: true }));
    expect(git(["rev-parse", "HEAD"], second.path)).toBe(pushed);
    writeFileSync(join(second.path, "two.txt"), "two\n");
    await second.commitAll("Turn 2, not pushed");
    await second.release();
    untouchedFor(keptRepo(root, "once"), days(8));
    const next = newWorkspaces(root);
    await next.cleanLeftovers();

    const third = await next.allocate(request(bare, { key: "once", reuse: true }));
    expect(git(["rev-parse", "HEAD"], third.path)).toBe(pushed);
    await third.release();
  });

  it("removing expired kept branches follows no link, in the kept folder or inside a kept repo", async () => {
    const bare = seedRemote();
    const root = join(dir, "links-root");
    const outside = mkdtempSync(join(dir, "outside-kept-"));
    writeFileSync(join(outside, "precious.txt"), "precious\n");
    await firstTurn(newWorkspaces(root), bare, "holds-link");
    symlinkSync(outside, join(keptRepo(root, "holds-link"), "objects", "elsewhere"));
    untouchedFor(keptRepo(root, "holds-link"), days(8));
    // A link whose target was touched just now: judged by the link's own age.
    symlinkSync(outside, keptRepo(root, "linked"));
    untouchedFor(keptRepo(root, "linked"), days(8));

    await newWorkspaces(root).cleanLeftovers();
    // Only the marks that tell their follow-ups the branch expired are left.
    expect(readdirSync(join(root, "kept")).sort()).toEqual(["holds-link.expired", "linked.expired"]);
    expect(readdirSync(outside)).toEqual(["precious.txt"]);
  });

  it("a follow-up whose last turn kept no branch goes on from the base; only an expired one is refused, and its mark goes after 90 days", async () => {
    const bare = seedRemote();
    const root = join(dir, "marks-root");
    const workspaces = newWorkspaces(root);
    // No kept repo and no mark: the last turn left nothing to keep (it broke its branch).
    const followUp = await workspaces.allocate(request(bare, { key: "kept-nothing", reuse: true }));
    expect(git(["rev-parse", "HEAD"], followUp.path)).toBe(git(["--git-dir", bare, "rev-parse", "main"]));
    await followUp.release();

    await firstTurn(newWorkspaces(root), bare, "marked");
    untouchedFor(keptRepo(root, "marked"), days(8));
    await newWorkspaces(root).cleanLeftovers();
    const mark = join(root, "kept", "marked.expired");
    expect(existsSync(mark)).toBe(true);
    untouchedFor(mark, days(91));
    const later = newWorkspaces(root);
    await later.cleanLeftovers();
    expect(existsSync(mark)).toBe(false);
  });
});

describe("workspaces on an https-style remote with a token", () => {
  const token = `ghp_${"0123456789abcdef".repeat(2)}Zq`;
  let server: GitHttpServer;
  let projectRoot: string;
  beforeAll(async () => {
    projectRoot = join(dir, "served");
    mkdirSync(projectRoot);
    server = await startGitHttpServer({ projectRoot, username: "x-access-token", password: token });
  });
  afterAll(() => server.close());

  function servedRepo(): string {
    const bare = seedRemote(projectRoot);
    return server.url(bare.slice(projectRoot.length + 1));
  }

  /** Every file under `folder` whose bytes hold `secret`. */
  function filesHolding(folder: string, secret: string): string[] {
    const found: string[] = [];
    for (const entry of readdirSync(folder, { recursive: true, withFileTypes: true })) {
      if (!entry.isFile()) continue;
      const path = join(entry.parentPath, entry.name);
      if (readFileSync(path).includes(secret)) found.push(path);
    }
    return found;
  }

  it("the token reaches git only through askpass: the push lands, and the token is in no file, line or URL", async () => {
    const url = servedRepo();
    const root = join(dir, "token-root");
    const progress: string[] = [];
    // A temp folder of this test's own: other test files make askpass folders at the same time.
    const ownTmp = mkdtempSync(join(tmpdir(), "askpass-test-"));
    const askpassDirs = () => readdirSync(ownTmp).filter((name) => name.startsWith("runyard-askpass-"));
    const savedTmp = process.env.TMPDIR;
    process.env.TMPDIR = ownTmp;
    let committed: { commit: string } | undefined;
    try {
      const ws = await newWorkspaces(root).allocate(
        request(url, {
          key: "with-token",
          credentials: { token },
          onProgress: (line) => progress.push(line),
        }),
      );
      writeFileSync(join(ws.path, "pushed.txt"), "over http\n");
      committed = (await ws.commitAll("Over HTTP")) ?? undefined;
      await ws.push();
      await ws.release();
    } finally {
      if (savedTmp === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = savedTmp;
    }

    const bare = join(projectRoot, url.split("/").pop()!);
    expect(git(["--git-dir", bare, "rev-parse", "runyard/with-token"])).toBe(committed?.commit);
    expect(server.requests.some((r) => r.authorized && r.path.endsWith("git-receive-pack"))).toBe(true);
    expect(progress).toContain(`pushing to ${url} (attempt 1 of 4)`);
    expect(progress.join("\n")).not.toContain(token);
    expect(filesHolding(root, token)).toEqual([]);
    // The askpass script's private folders are gone with the git commands they served.
    expect(askpassDirs()).toEqual([]);
    expect(filesHolding(projectRoot, token)).toEqual([]);
    expect(
      readFileSync(join(root, "mirrors", readdirSync(join(root, "mirrors"))[0]!, "config"), "utf8"),
    ).toContain(`url = ${url}\n`);
  });

  it("a wrong token is WORKSPACE_AUTH at once, without retries, and the error does not show it", async () => {
    const url = servedRepo();
    const wrong = "ghp_wrongwrongwrongwrong1234";
    const progress: string[] = [];
    const before = server.requests.length;
    const error = await caught(
      newWorkspaces().allocate(
        request(url, {
          key: "wrong-token",
          base: "main",
          credentials: { token: wrong },
          onProgress: (line) => progress.push(line),
        }),
      ),
    );
    expect(error.code).toBe("WORKSPACE_AUTH");
    expect(error.message).toContain("Authentication failed");
    expect(`${error.message} ${error.hint}`).not.toContain(wrong);
    expect(progress).toEqual([`fetching ${url} (attempt 1 of 4)`]);
    // The server saw the token, so git did send it: once without credentials, once with.
    expect(server.requests.slice(before).map((r) => r.authorization !== undefined)).toEqual([false, true]);
  });

  it("a remote that needs a token and gets none is WORKSPACE_AUTH", async () => {
    const url = servedRepo();
    const error = await caught(newWorkspaces().allocate(request(url, { key: "no-token" })));
    expect(error.code).toBe("WORKSPACE_AUTH");
    expect(error.hint).toMatch(/token/);
  });

  it("canceling an allocation stops git at once: CANCELED, its connection dropped, no worktree left", async () => {
    const url = servedRepo();
    const workspaces = newWorkspaces();
    const controller = new AbortController();
    const hung = server.hangNext();
    const allocation = caught(
      workspaces.allocate(
        request(url, { key: "canceled", credentials: { token }, signal: controller.signal }),
      ),
    );
    const { closed } = await hung;
    controller.abort();
    const error = await allocation;
    expect(error.code).toBe("CANCELED");
    await closed;
    const root = join(workspaces.mirrorFor(url), "..", "..");
    expect(readdirSync(join(root, "mirrors")).filter((name) => name.endsWith(".lock"))).toEqual([]);
    expect(existsSync(join(root, "worktrees", "canceled"))).toBe(false);
    // The mirror is usable by the next run.
    const ws = await workspaces.allocate(request(url, { key: "after-cancel", credentials: { token } }));
    await ws.release();
  });

  it("a server that answers 503 twice is retried with backoff, and the progress says the attempt", async () => {
    const url = servedRepo();
    const progress: string[] = [];
    server.failNext(2);
    const ws = await newWorkspaces().allocate(
      request(url, {
        key: "flaky",
        base: "main",
        credentials: { token },
        onProgress: (line) => progress.push(line),
      }),
    );
    expect(progress.filter((line) => line.startsWith("fetching"))).toEqual([
      `fetching ${url} (attempt 1 of 4)`,
      expect.stringMatching(/^fetching .* failed \(.*503.*\); retrying in \d+ ms$/),
      `fetching ${url} (attempt 2 of 4)`,
      expect.stringMatching(/^fetching .* failed \(.*503.*\); retrying in \d+ ms$/),
      `fetching ${url} (attempt 3 of 4)`,
    ]);
    await ws.release();
  });

  it("a server that keeps failing ends in WORKSPACE_UNREACHABLE after every attempt", async () => {
    const url = servedRepo();
    const progress: string[] = [];
    server.failNext(4, 502);
    const error = await caught(
      newWorkspaces().allocate(
        request(url, {
          key: "down",
          base: "main",
          credentials: { token },
          onProgress: (line) => progress.push(line),
        }),
      ),
    );
    expect(error.code).toBe("WORKSPACE_UNREACHABLE");
    expect(error.message).toContain("failed 4 times");
    expect(progress).toContain(`fetching ${url} (attempt 4 of 4)`);
  });
});
