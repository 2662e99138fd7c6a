/**
 * A forge's review comment resumes a real Claude Code's session on a sandboxing runner, as its
 * users run it: the scripted GitHub, the scripted Anthropic API, the pinned `claude` CLI, the
 * runner's sandbox on. Claude Code keeps its sessions under its config folder; the sandbox shows
 * each turn a `$HOME` of its own, so the session lives in the conversation's state folder
 * (CLAUDE_CONFIG_DIR), which the review comment's turn must find again.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { claudeCodeAgent } from "../src/agents/claude-code.js";
import { type ForgeIssue, type ScriptedForge, startScriptedForge } from "./forge-server/server.js";
import { mainScript, pinnedCli, withTools } from "./helpers/agent-turn.js";
import { tempDir } from "./helpers/cli.js";
import { addGithubForge, startedRun } from "./helpers/forge-setup.js";
import { until } from "./helpers/processes.js";
import {
  isFinal,
  type Proc,
  runnerToken,
  startRunner,
  startTestServer,
  type TestServer,
  waitForRun,
} from "./helpers/server.js";
import { type ModelServer, startModelServer, type Turn } from "./model-server/server.js";

const claude = pinnedCli(claudeCodeAgent);
// CI installs the agents' CLIs (.ci/run): there this runs, never skips.
if (!claude && process.env.CI === "true")
  throw new Error("Claude Code is not installed: npm run agents:install, as .ci/run does");

const botToken = "ghp_runyard_bot_token_cc11";
let forge: ScriptedForge;
let server: TestServer;
let runner: Proc;
let model: ModelServer;
let webhookUrl = "";
let webhookSecret = "";
let bare = "";

/** Claude Code's Bash tool writing hello.py in the task's worktree (its cwd), then its answer. */
const writeHello = (lines: string[]): Turn[] => [
  {
    toolCalls: [
      {
        name: "Bash",
        input: { command: `printf '${lines.join("\\n")}\\n' > hello.py`, description: "write" },
      },
    ],
  },
  { text: "Wrote hello.py." },
];
const gitOut = (...args: string[]) =>
  spawnSync("git", ["--git-dir", bare, ...args], { encoding: "utf8" }).stdout;

beforeAll(async () => {
  if (!claude) return;
  const root = tempDir("runyard-forges-cc-");
  forge = await startScriptedForge(root);
  bare = forge.createRepo("acme/app", { "README.md": "app\n" });
  forge.addToken(botToken, "runyard-bot");
  forge.setPermission("runyard-bot", "write");
  forge.setPermission("alice", "write");
  model = await startModelServer(mainScript({ text: "ok" }, writeHello(['print("hello")'])));
  server = await startTestServer();
  // The runner as its operator sets it up: Claude Code on PATH, its endpoint and key in env.
  runner = await startRunner(server.url, await runnerToken(server.url), {
    id: "forge-cc-runner",
    env: {
      PATH: `${dirname(claude)}:${process.env.PATH}`,
      ANTHROPIC_BASE_URL: model.url,
      ANTHROPIC_API_KEY: "sk-ant-forge-test",
      IS_SANDBOX: "1",
      RUNYARD_WORKSPACE_DIR: join(root, "ws"),
    },
  });
  const added = await addGithubForge({
    serverUrl: server.url,
    forgeUrl: forge.url,
    repo: "acme/app",
    botToken,
    agent: "claude_code",
    test: "python3 hello.py | grep -qx hello",
  });
  webhookUrl = added.webhookUrl;
  webhookSecret = added.webhookSecret;
}, 120_000);

afterAll(async () => {
  await runner?.kill();
  await server?.proc.kill();
  await model?.stop();
  await forge?.close();
});

describe.skipIf(!claude)("a forge's review comment with Claude Code on a sandboxing runner", () => {
  it("resumes the issue task's session: the model is sent the first turn, and the branch gets a new commit", async () => {
    const issue: ForgeIssue = forge.createIssue("acme/app", {
      title: "Add hello.py",
      body: "It prints hello.",
      user: "alice",
    });
    const first = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "issues",
        forge.payloads.labeled("acme/app", issue, "runyard", "alice"),
      ),
    );
    const firstRun = await waitForRun(server.url, first, isFinal, 120_000);
    expect(firstRun.status, JSON.stringify(firstRun.error)).toBe("success");
    await until("the pull request is opened", () =>
      forge.issues.some((i) => i.pull?.head === `runyard/issue-${issue.number}`),
    );
    const pull = forge.issues.find((i) => i.pull?.head === `runyard/issue-${issue.number}`)!;
    const before = Number(gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim());

    // The resumed session brings the first turn's two answers: the script's turns 3 and 4 follow them.
    model.setScript(
      mainScript({ text: "ok" }, [
        ...writeHello(['print("hello")']),
        ...writeHello(['print("hello")', 'print("bye")']),
      ]),
    );
    const followUp = startedRun(
      await forge.deliver(
        webhookUrl,
        webhookSecret,
        "pull_request_review_comment",
        forge.payloads.reviewComment("acme/app", pull, "also print bye", "alice"),
      ),
    );
    const followed = await waitForRun(server.url, followUp, isFinal, 120_000);
    expect(followed.status, JSON.stringify(followed.error)).toBe("success");
    // Claude Code found its session: what it sent the model carries the issue's turn before the comment.
    const history = JSON.stringify(model.requests.filter(withTools).at(-1)?.body);
    expect(history).toContain("It prints hello.");
    expect(history).toContain("Wrote hello.py.");
    expect(history).toContain("also print bye");
    expect(Number(gitOut("rev-list", "--count", `runyard/issue-${issue.number}`).trim())).toBe(before + 1);
    expect(gitOut("show", `runyard/issue-${issue.number}:hello.py`)).toContain("bye");
  }, 300_000);
});
