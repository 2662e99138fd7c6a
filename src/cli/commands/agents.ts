import type { Command } from "commander";
import type { CommandDeps } from "./options.js";

/** `runyard agents`: the agent CLIs installed on this machine. */
export function registerAgents(program: Command, { ctx, setExit }: CommandDeps): void {
  const agents = program
    .command("agents")
    .description("the coding agents: installed (path, version), credentials present, usable")
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard); CLIs are under <home>/agents")
    .option("--json", "JSON output")
    .action(async (flags) =>
      setExit(await (await import("../agents.js")).agentsList(flags, await ctx({ home: flags.home }))),
    );
  agents
    .command("install")
    .description("install the pinned agent CLIs into <home>/agents with npm (all when none is named)")
    .argument("[names...]", "claude_code, codex, opencode, gemini, copilot")
    .option("--claude-code", "install Claude Code")
    .option("--codex", "install Codex")
    .option("--opencode", "install OpenCode")
    .option("--gemini", "install Gemini CLI")
    .option("--copilot", "install GitHub Copilot CLI")
    // Its own `--home` too: options after a command are that command's (positional options).
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard); CLIs go to <home>/agents")
    .action(async (names: string[], flags) =>
      setExit(
        await (await import("../agents.js")).agentsInstall(
          names,
          flags,
          await ctx({ home: flags.home ?? agents.opts().home }),
        ),
      ),
    );
}
