/**
 * One shared runner, sandboxed with bubblewrap, serves two tenants' agent tasks on the same
 * repository. Attacks on what a task leaves behind for the runner's own git, which runs after the
 * turn outside any sandbox, and for the other tenant's tasks of the same repository:
 * - the task's tests (code the agent wrote) point the worktree's `.git` file at a repo made in
 *   the worktree, whose config names a command (`core.fsmonitor`) for the runner's next git;
 * - the agent stages a repo nested in the worktree as a submodule, whose own config runs a command
 *   on the `git status` git runs inside a submodule;
 * - the agent links files of its repo's writable git folders (COMMIT_EDITMSG, reflogs, the diff's
 *   index) to files of the runner's machine, which the runner's git would write through;
 * - an agent reads every object of the repository's mirror, which it sees read-only, looking for
 *   the work another tenant's task kept on the runner without pushing it.
 */

import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "../helpers/git-repos.js";
import { api, isFinal, type RunView, readEvents, type TestServer, waitForRun } from "../helpers/server.js";
import { hasTools, type SharedAgentRunner, startSharedAgentRunner } from "../helpers/shared-agent-runner.js";
import type { ModelServer } from "../model-server/server.js";

let rig: SharedAgentRunner;
let root: string;
let server: TestServer;
let model: ModelServer;
let bare: string;
let attacker: string;
let victim: string;

/** Runs one agent task whose agent runs `script` in one shell call: the run and the tool's output. */
async function shellTask(
  token: string,
  script: string,
  body: Record<string, unknown>,
): Promise<{ run: RunView; output: string }> {
  model.setScript({
    conversations: [
      {
        match: hasTools,
        turns: [{ toolCalls: [{ name: "run_command", input: { command: script } }] }, { text: "Done." }],
      },
      { turns: [{ text: "A title" }] },
    ],
  });
  const submitted = await api<{ run_id: string }>(
    server.url,
    "POST",
    "/api/runs",
    {
      kind: "agent",
      agent: "openai",
      prompt: "go",
      ...body,
      repo: { url: rig.remoteUrl, ...(body.repo as object) },
    },
    token,
  );
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const run = await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
  const events = await readEvents(server.url, run.run_id);
  const output = events
    .flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : e.type === "step.output" ? [e.data] : []))
    .join("\n");
  return { run, output: `${output}\n${JSON.stringify(run.error)}` };
}

describe("what an agent task leaves for the runner's git and for other tenants", () => {
  beforeAll(async () => {
    rig = await startSharedAgentRunner({
      name: "task-repo-attacks",
      runnerId: "shared-task-repo-runner",
      readme: "readme\n",
      apiKey: "sk-task-repo-attacks-51c2",
    });
    ({ root, bare, server, model, attacker, victim } = rig);
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
  });

  it("tests that point the worktree's .git at a repo of their own run nothing as the runner, and the work is committed on the task's branch", async () => {
    const marker = join(root, "the-runner-ran-the-tests-command");
    // What the agent writes: a test script that, run by the task's tests, makes a git folder in
    // the worktree whose config runs a command, and points `.git` at it.
    const check = [
      "mkdir -p evil/objects evil/refs/heads",
      "echo 'ref: refs/heads/main' > evil/HEAD",
      `printf '[core]\\n\\trepositoryformatversion = 0\\n\\tbare = false\\n\\tfsmonitor = "touch ${marker}; false"\\n' > evil/config`,
      "echo 'gitdir: evil' > .git",
      'echo "pointer=$?"',
    ].join("\n");
    const script = `cat > check.sh <<'SH'\n${check}\nSH\necho work > work.txt`;
    const { run, output } = await shellTask(attacker, script, {
      repo: { branch: "pointer-attack", push: true },
      tests: { command: "sh check.sh" },
    });
    // The tests could write the worktree's `.git` file (it is theirs to write: the worktree is).
    expect(output).toContain("pointer=0");
    expect(existsSync(marker), output).toBe(false);
    expect(run.status, output).toBe("success");
    // The runner committed and pushed to the task's own repo and branch, not the one the tests made.
    expect(git(bare, "show", "pointer-attack:work.txt")).toBe("work\n");
  }, 200_000);

  it("a repo nested in the worktree, named in .gitmodules, runs nothing of its config when the runner commits", async () => {
    const marker = join(root, "the-runner-ran-the-nested-repos-command");
    // The agent stages a nested repo as a submodule, then gives that repo a config that runs a
    // command on `git status`, which git runs in a submodule to see whether it changed.
    const script = [
      "mkdir sub && cd sub && git init -q && echo x > x && git add x",
      "git -c user.name=a -c user.email=a@a commit -qm x && cd ..",
      `printf '[submodule "sub"]\\n\\tpath = sub\\n\\turl = ./sub\\n' > .gitmodules`,
      "git add sub .gitmodules",
      `git -C sub config core.fsmonitor "touch ${marker}; false"`,
      'echo changed > sub/x; echo "staged=$?"',
    ].join("\n");
    const { run, output } = await shellTask(attacker, script, {
      repo: { branch: "nested-attack", push: true },
    });
    expect(output).toContain("staged=0");
    expect(existsSync(marker), output).toBe(false);
    expect(run.status, output).toBe("success");
    // The nested repo is committed as what it is: a submodule at its repo's commit.
    expect(git(bare, "ls-tree", "nested-attack", "sub")).toMatch(/^160000 commit [0-9a-f]{40}\tsub\n$/);
  }, 200_000);

  it("a nested repo whose .git leads to another repo of the runner's machine puts no commit id of that repo on the branch", async () => {
    // A repo of the runner's machine the sandbox does not show: its HEAD is what the attack is after.
    const hidden = join(root, "hidden-project.git");
    git(root, "clone", "--quiet", "--bare", bare, hidden);
    const secretHead = git(hidden, "rev-parse", "HEAD").trim();
    const script = [
      `mkdir leak && printf 'gitdir: ${hidden}\\n' > leak/.git; echo "pointed=$?"`,
      `mkdir borrow && cd borrow && git init -q -b main && echo ${hidden} > .git/commondir; cd ..`,
      "echo work > work.txt",
    ].join("\n");
    const { run, output } = await shellTask(attacker, script, {
      repo: { branch: "gitfile-attack", push: true },
    });
    expect(output).toContain("pointed=0");
    expect(run.status, output).toBe("success");
    const tree = git(bare, "ls-tree", "-r", "gitfile-attack");
    expect(tree).not.toContain(secretHead);
    expect(git(bare, "ls-tree", "gitfile-attack", "leak", "borrow")).toBe("");
    expect(git(bare, "show", "gitfile-attack:work.txt")).toBe("work\n");
  }, 200_000);

  it("links the agent leaves in its repo's git folders make the runner's git write no file outside them", async () => {
    // Files of the runner's machine, outside the sandbox: the agent names them by path.
    const victims = ["editmsg", "worktree-reflog", "branch-reflog", "diff-index"].map((name) => {
      const path = join(root, `victim-${name}.txt`);
      writeFileSync(path, "precious\n");
      return path;
    });
    const script = [
      'gd=$(sed -n "s/^gitdir: //p" .git); c="$gd/$(cat "$gd/commondir")"',
      `ln -sf ${victims[0]} "$gd/COMMIT_EDITMSG"; echo "link-editmsg=$?"`,
      `mkdir -p "$gd/logs" && ln -sf ${victims[1]} "$gd/logs/HEAD"; echo "link-worktree-reflog=$?"`,
      `mkdir -p "$c/logs/refs/heads" && ln -sf ${victims[2]} "$c/logs/refs/heads/link-attack"; echo "link-branch-reflog=$?"`,
      `ln -sf ${victims[3]} "$gd/runyard-diff-index"; echo "link-diff-index=$?"`,
      "echo work > work.txt",
    ].join("\n");
    const { run, output } = await shellTask(attacker, script, {
      repo: { branch: "link-attack", push: true },
    });
    for (const link of ["editmsg", "worktree-reflog", "branch-reflog", "diff-index"]) {
      expect(output, link).toContain(`link-${link}=0`);
    }
    expect(run.status, output).toBe("success");
    for (const victim of victims) expect(readFileSync(victim, "utf8"), victim).toBe("precious\n");
    expect(git(bare, "show", "link-attack:work.txt")).toBe("work\n");
  }, 200_000);

  it("another tenant's agent finds nothing of a task's unpushed work among the mirror's objects it sees", async () => {
    const secret = "globex-unpushed-7f3a9c";
    const first = await shellTask(victim, `echo ${secret} > notes.txt`, {
      repo: { branch: "globex-private", push: false },
    });
    expect(first.run.status, first.output).toBe("success");
    // Every object of every folder of objects the attacker's repo borrows, printed in full.
    const dump = [
      'gd=$(sed -n "s/^gitdir: //p" .git); c="$gd/$(cat "$gd/commondir")"',
      'export GIT_DIR="$c"',
      "git cat-file --batch-all-objects --batch-check='%(objectname) %(objecttype)' | while read -r id type; do",
      '  [ "$type" = blob ] && git cat-file blob "$id"',
      "done",
      'echo "objects=$(git cat-file --batch-all-objects --batch-check | wc -l)"',
    ].join("\n");
    const { run, output } = await shellTask(attacker, dump, { repo: { push: false } });
    expect(run.status, output).toBe("success");
    expect(output).toContain("readme");
    expect(output).not.toContain(secret);

    // The victim's own follow-up still finds its work.
    model.setScript({
      conversations: [
        {
          match: hasTools,
          turns: [
            { text: "-" },
            { text: "-" },
            { toolCalls: [{ name: "run_command", input: { command: "cat notes.txt" } }] },
            { text: "Done." },
          ],
        },
        { turns: [{ text: "A title" }] },
      ],
    });
    const next = await api<{ run_id: string }>(
      server.url,
      "POST",
      `/api/runs/${first.run.run_id}/messages`,
      { text: "go on" },
      victim,
    );
    expect(next.status, JSON.stringify(next.body)).toBe(201);
    const followUp = await waitForRun(server.url, next.body.run_id, isFinal, 120_000);
    const events = await readEvents(server.url, followUp.run_id);
    const seen = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
    expect(followUp.status, seen).toBe("success");
    expect(seen).toContain(secret);
  }, 300_000);

  it("another tenant cannot name the runner's own copy of a task's kept branch, or a mirror, as its repo", async () => {
    const secret = "globex-kept-only-5e11d0";
    const first = await shellTask(victim, `echo ${secret} > kept-notes.txt`, {
      repo: { branch: "globex-kept", push: false },
    });
    expect(first.run.status, first.output).toBe("success");
    const runnerRoot = join(rig.workspaceDir, "shared-task-repo-runner");
    const kept = join(runnerRoot, "kept", `${first.run.run_id}-openai.git`);
    expect(existsSync(kept)).toBe(true);
    const mirror = join(
      runnerRoot,
      "mirrors",
      readdirSync(join(runnerRoot, "mirrors")).find((n) => n.endsWith(".git"))!,
    );
    for (const [url, base] of [
      [kept, "globex-kept"],
      [`file://${kept}`, "globex-kept"],
      [mirror, "main"],
    ] as const) {
      const refused = await api<{ error?: { code: string; message: string } }>(
        server.url,
        "POST",
        "/api/runs",
        { kind: "agent", agent: "openai", prompt: "cat kept-notes.txt", repo: { url, base, push: false } },
        attacker,
      );
      expect(refused.status, url).toBe(400);
      expect(refused.body.error?.code).toBe("INVALID_INPUT");
      expect(refused.body.error?.message).toContain("is a folder of the runner");
    }
  }, 300_000);
});
