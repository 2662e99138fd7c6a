import type { Command } from "commander";
import { type CommandDeps, collect, rawHelp, submitFlags } from "./options.js";

/** `runyard agent`: coding agents' runs on a server. */
export function registerAgent(program: Command, { api, setExit }: CommandDeps): void {
  const agent = program.command("agent").description("run AI coding agents on the server's runners");
  submitFlags(
    agent
      .command("run")
      .argument("<prompt>", "what the agent should do")
      .description("submit an agent task (exit 0 success, 1 failed, 130 canceled with --follow)")
      .option("--agent <name>", "claude_code (default), codex, opencode, gemini, copilot or openai")
      .option("--agents <a,b,...>", "fan-out: the same task to each agent, compared side by side")
      .option("--model <model>", "the model the agent uses")
      .option("--repo <url>", "work in a fresh worktree of this repo on a new branch")
      .option("--base <branch>", "the branch to start from (default: the remote's default)")
      .option("--branch <name>", "the new branch (default runyard/<run>-<agent>)")
      .option("--push", "push the branch when the agent and the tests succeed")
      .option("--cwd <dir>", "work in this folder of the runner instead of a repo")
      .option("--test <command>", "run this shell command after the agent; failing it fails the task")
      .option(
        "--playbook <file>",
        "run this playbook's steps as the tests (the playbook format of docs/workflows.md)",
      )
      .option(
        "--sandbox [image]",
        "run the agent in a hardened container of this image on a runner with docker (default runyard-agent, built from docker/agent.Dockerfile); egress only to its model",
      )
      .option("--sandbox-memory <size>", "the sandbox's memory, like 2g (default 2g)")
      .option("--sandbox-network <mode>", "model-only (default: egress to the model endpoint alone) or none")
      .option("--timeout <seconds>", "the whole turn (default 300)")
      .option("--stall <seconds>", "fail with AGENT_STALLED after this long without output (default 120)")
      .option("--budget-tokens <n>", "stop with BUDGET_EXCEEDED past this many tokens")
      .option("--budget-usd <usd>", "stop with BUDGET_EXCEEDED past this cost")
      .option("--secret <NAME>", "a stored secret given to the agent as env (repeatable)", collect, [])
      .option("--env <NAME=value>", "env for the agent (repeatable)", collect, [])
      .option("--arg <arg>", "an extra argument for the agent CLI (repeatable)", collect, [])
      .option(
        "--mcp <NAME=COMMAND...|NAME=URL>",
        "an MCP server for the agent: a command it starts inside its sandbox, or an http(s) URL its sandbox may reach for this task (repeatable)",
        collect,
        [],
      )
      .option("--mcp-file <file>", "MCP servers from a YAML or JSON map: NAME: {command, args, env} or {url}")
      .option(
        "--setup <command>",
        "a shell command run in the worktree, in the agent's sandbox, before the first turn",
      )
      .option(
        "--copy-file <path>",
        "a file copied into the worktree from the runner's agent_files_dir before the first turn (repeatable)",
        collect,
        [],
      )
      .option("--group <group>", "runner group")
      .option("--label <label>", "runner label (repeatable)", collect, [])
      .option("-f, --follow", "stream the run until it ends, like `runyard run`")
      .option("--raw", rawHelp)
      .option("--json", "JSON output")
      .option("-q, --quiet", "print only failures and the result"),
  ).action(async (prompt: string, flags) =>
    setExit(await (await import("../agent.js")).agentRun(prompt, flags, await api(flags))),
  );
  submitFlags(
    agent
      .command("send")
      .argument("<run>", "a finished agent run")
      .argument("<text>", "the follow-up message")
      .description("continue an agent run: its agents resume their sessions in the same workspace")
      .option("-f, --follow", "stream the new turn until it ends")
      .option("--raw", rawHelp)
      .option("--json", "JSON output")
      .option("-q, --quiet", "print only failures and the result"),
  ).action(async (run: string, text: string, flags) =>
    setExit(await (await import("../agent.js")).agentSend(run, text, flags, await api(flags))),
  );
  submitFlags(
    agent
      .command("push")
      .argument("<run>", "a finished agent run on a repo, submitted without --push")
      .description(
        "push a finished agent run's branch as its last turn left it (a run of its own; asked twice, the same run)",
      )
      .option("--pull-request", "then open a pull request for it through the forge added for the repo")
      .option("-f, --follow", "stream the push until it ends")
      .option("--raw", rawHelp)
      .option("--json", "JSON output")
      .option("-q, --quiet", "print only failures and the result"),
  ).action(async (run: string, flags) =>
    setExit(await (await import("../agent.js")).agentPush(run, flags, await api(flags))),
  );
}
