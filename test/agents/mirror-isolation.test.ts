/**
 * One runner, outside tenants, sandboxed with bubblewrap, serves two tenants' agent tasks on the
 * same repository, and so one git mirror. An agent of one tenant (here the built-in loop, told by
 * a scripted model to run one shell script) attacks the mirror with everything its sandbox shows
 * it: it moves the branch refs another tenant's conversation left, overwrites the object file of
 * a file on the base branch, adds an object file, and writes the mirror's (and its own repo's)
 * config, hooks and alternates. The other tenant's follow-up turn, and a new task of theirs, then
 * start from the true state of the remote and of their own last turn.
 */

import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { git } from "../helpers/git-repos.js";
import { api, isFinal, type RunView, readEvents, type TestServer, waitForRun } from "../helpers/server.js";
import { hasTools, type SharedAgentRunner, startSharedAgentRunner } from "../helpers/shared-agent-runner.js";
import type { ModelServer } from "../model-server/server.js";

const apiKey = "sk-mirror-isolation-9d1f";
const runnerId = "shared-mirror-runner";
const trueReadme = "the remote's own README\n";
/** A loose object file as git writes it: its name (the hash) and its zlib-compressed bytes. */
function looseObject(content: string): { hash: string; base64: string } {
  const raw = Buffer.concat([Buffer.from(`blob ${Buffer.byteLength(content)}\0`), Buffer.from(content)]);
  return {
    hash: createHash("sha1").update(raw).digest("hex"),
    base64: deflateSync(raw).toString("base64"),
  };
}

let rig: SharedAgentRunner;
let root: string;
let server: TestServer;
let model: ModelServer;
let bare: string;
let workspaceDir: string;
let attacker: string;
let victim: string;

/**
 * Runs one agent task whose agent runs `script` in one shell call: the run and the tool's output.
 * A follow-up's model request holds the first turn's two answers (the model server counts them).
 */
async function shellTask(
  token: string,
  script: string,
  submit: { path: string; body: Record<string, unknown> },
  followUp = false,
): Promise<{ run: RunView; output: string }> {
  const shell = [{ toolCalls: [{ name: "run_command", input: { command: script } }] }, { text: "Done." }];
  model.setScript({
    conversations: [
      { match: hasTools, turns: followUp ? [{ text: "-" }, { text: "-" }, ...shell] : shell },
      { turns: [{ text: "A title" }] },
    ],
  });
  const submitted = await api<{ run_id: string }>(server.url, "POST", submit.path, submit.body, token);
  expect(submitted.status, JSON.stringify(submitted.body)).toBe(201);
  const run = await waitForRun(server.url, submitted.body.run_id, isFinal, 120_000);
  const events = await readEvents(server.url, run.run_id);
  const output = events.flatMap((e) => (e.type === "agent.tool_result" ? [e.output] : [])).join("\n");
  return { run, output: `${output}\n${JSON.stringify(run.error)}` };
}

function newTask(prompt: string, repo: Record<string, unknown>) {
  return {
    path: "/api/runs",
    body: { kind: "agent", agent: "openai", prompt, repo: { url: rig.remoteUrl, ...repo } },
  };
}

function mirrorFolder(): string {
  const folder = join(workspaceDir, runnerId, "mirrors");
  const mirrors = readdirSync(folder).filter((name) => name.endsWith(".git"));
  expect(mirrors).toHaveLength(1);
  return join(folder, mirrors[0]!);
}

describe("a repository's mirror shared by the tasks of two tenants on one runner", () => {
  beforeAll(async () => {
    rig = await startSharedAgentRunner({
      name: "mirror-isolation",
      runnerId: runnerId,
      readme: trueReadme,
      apiKey: apiKey,
    });
    ({ root, bare, server, model, attacker, victim } = rig);
    workspaceDir = rig.workspaceDir;
  }, 120_000);

  afterAll(async () => {
    await rig?.stop();
  });

  it("an agent that attacks the mirror changes nothing another tenant's tasks start from", async () => {
    // The victim's first turn: work on a branch of its own, kept on the runner for a follow-up.
    const first = await shellTask(victim, 'echo "the victim\'s work" > victim.txt', {
      ...newTask("start", { branch: "victim-feature", push: false }),
    });
    expect(first.run.status, first.output).toBe("success");

    const base = git(bare, "rev-parse", "main").trim();
    const readme = git(bare, "rev-parse", "main:README.md").trim();
    const evil = looseObject("the attacker's README\n");
    const planted = looseObject("planted by the attacker\n");
    const marker = join(root, "the-runner-ran-the-attackers-command");
    const objectFile = (hash: string) => `"$m/objects/${hash.slice(0, 2)}/${hash.slice(2)}"`;
    const fsmonitor = `printf '[core]\\n\\tfsmonitor = "touch ${marker}; false"\\n'`;
    const hook = `printf '#!/bin/sh\\ntouch ${marker}\\n'`;
    const attack = [
      // The worktree's git folder, its repo, and the mirror that repo's objects come from.
      'gd=$(sed -n "s/^gitdir: //p" .git); c="$gd/$(cat "$gd/commondir")"; m="$c"',
      'if [ -s "$c/objects/info/alternates" ]; then m=$(dirname "$(head -n 1 "$c/objects/info/alternates")"); fi',
      // (1) Every branch the mirror keeps goes back to the base, and a new one appears.
      `for f in $(find "$m/refs" -type f ! -path "*/refs/remotes/*"); do echo ${base} > "$f"; echo "move-ref=$?"; done`,
      `echo ${base} > "$m/refs/heads/planted"; echo "new-ref=$?"`,
      // (2) The base's README gets other contents under its own name; an object is added.
      `rm -f ${objectFile(readme)}; echo ${evil.base64} | base64 -d > ${objectFile(readme)}; echo "overwrite-object=$?"`,
      `mkdir -p "$m/objects/${planted.hash.slice(0, 2)}"; echo ${planted.base64} | base64 -d > ${objectFile(planted.hash)}; echo "add-object=$?"`,
      // (3) What the runner's own git reads after the turn: config, hooks, alternates.
      `${fsmonitor} >> "$m/config"; echo "mirror-config=$?"`,
      `${hook} > "$m/hooks/post-checkout" && chmod +x "$m/hooks/post-checkout"; echo "mirror-hooks=$?"`,
      `echo /tmp >> "$m/objects/info/alternates"; echo "mirror-alternates=$?"`,
      `${fsmonitor} >> "$c/config"; echo "repo-config=$?"`,
      `echo /tmp >> "$c/objects/info/alternates"; echo "repo-alternates=$?"`,
      "echo changed > attacker.txt",
    ].join("\n");
    const attacked = await shellTask(attacker, attack, newTask("attack", { push: false }));
    const output = attacked.output;
    // Each write failed where the sandbox shows the file at all (what it does not show, a write
    // lands in the sandbox's own empty folders: the mirror's state is checked on the host below).
    for (const write of [
      "move-ref",
      "overwrite-object",
      "add-object",
      "mirror-alternates",
      "repo-config",
      "repo-alternates",
    ]) {
      expect(output, write).not.toMatch(new RegExp(`${write}=0`));
    }
    // The runner committed the attacker's change with its own git, and ran nothing of theirs.
    expect(attacked.run.status, output).toBe("success");
    expect(existsSync(marker)).toBe(false);

    // The victim's follow-up goes on from its own last turn, on the remote's true README.
    const followUp = await shellTask(
      victim,
      'cat victim.txt; cat README.md; echo "read=$?"',
      {
        path: `/api/runs/${first.run.run_id}/messages`,
        body: { text: "go on" },
      },
      true,
    );
    expect(followUp.run.status, followUp.output).toBe("success");
    expect(followUp.output).toContain("the victim's work");
    expect(followUp.output).toContain(trueReadme.trim());
    expect(followUp.output).not.toContain("attacker");

    // A new task of the victim's starts from the remote as it is, and pushes what it found.
    const fresh = await shellTask(
      victim,
      "cat README.md > seen.txt; cat seen.txt",
      newTask("look", { push: true }),
    );
    expect(fresh.run.status, fresh.output).toBe("success");
    expect(fresh.output).toContain(trueReadme.trim());
    const pushed = `runyard/${fresh.run.run_id}-openai`;
    expect(git(bare, "show", `${pushed}:seen.txt`)).toBe(trueReadme);
    expect(git(bare, "rev-parse", `${pushed}~1`).trim()).toBe(base);

    // The mirror itself: its objects are what their names say, nothing was planted or configured.
    const mirror = mirrorFolder();
    expect(git(mirror, "cat-file", "blob", readme)).toBe(trueReadme);
    expect(existsSync(join(mirror, "objects", planted.hash.slice(0, 2), planted.hash.slice(2)))).toBe(false);
    expect(readFileSync(join(mirror, "config"), "utf8")).not.toContain("fsmonitor");
    expect(existsSync(join(mirror, "hooks", "post-checkout"))).toBe(false);
    expect(existsSync(join(mirror, "objects", "info", "alternates"))).toBe(false);
    expect(git(mirror, "for-each-ref", "--format=%(refname)", "refs/heads/")).toBe("");
    expect(git(mirror, "fsck", "--no-progress")).toBe("");
    expect(existsSync(marker)).toBe(false);
  }, 400_000);
});
