import { join } from "node:path";
import { type AgentStatus, agentStatus } from "../agents/availability.js";
import { installAgents } from "../agents/install.js";
import { adapterFor, agentNames, cliAdapters } from "../agents/registry.js";
import type { AgentSetting, AgentSetup } from "../agents/types.js";
import { resolveHome } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import type { CliContext } from "./context.js";
import { printJson, table } from "./table.js";

/**
 * The OpenRunner-style API's `install-agents.sh --claude-code` style flags, by commander's
 * camelCase name.
 */
export interface InstallFlags {
  claudeCode?: boolean;
  codex?: boolean;
  opencode?: boolean;
  gemini?: boolean;
  copilot?: boolean;
}

const flagAgents: ReadonlyArray<readonly [keyof InstallFlags, string]> = [
  ["claudeCode", "claude_code"],
  ["codex", "codex"],
  ["opencode", "opencode"],
  ["gemini", "gemini"],
  ["copilot", "copilot"],
];

/** Where `runyard agents install` puts the CLIs, and runners look for them first. */
function agentsHome(ctx: CliContext): string {
  return join(resolveHome(ctx.config, ctx.cwd), "agents");
}

/**
 * `runyard agents`: each agent installed or not (path, version), credentials present, usable, and
 * the endpoint and model a run without settings of its own would use here, with their sources.
 */
export async function agentsList(flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const lookup = { agentsHome: agentsHome(ctx), env: ctx.env };
  const statuses = await Promise.all(
    agentNames.map(async (name) => {
      const setup = adapterFor(name)?.setup?.({ run: {}, runner: ctx.env });
      return { ...(await agentStatus(name, lookup)), ...setup };
    }),
  );
  if (flags.json) return printJson(ctx.stdout, statuses);
  const yesNo = (value: boolean) => (value ? "yes" : "no");
  const shown = (setting: AgentSetting | undefined) =>
    setting ? `${setting.value} (${setting.source})` : "-";
  const rows = [
    ["NAME", "INSTALLED", "VERSION", "PATH", "CREDENTIALS", "USABLE", "ENDPOINT", "MODEL"],
    ...statuses.map((s: AgentStatus & Partial<AgentSetup>) => [
      s.name,
      yesNo(s.installed),
      s.version ?? "-",
      s.path || (s.installed ? "(built in)" : "-"),
      yesNo(s.credentials),
      yesNo(s.usable),
      shown(s.endpoint),
      shown(s.model),
    ]),
  ];
  ctx.stdout.write(`${table(rows)}\n`);
  const problems = statuses.filter((s) => s.problem);
  if (problems.length > 0) {
    ctx.stdout.write(`\n${problems.map((s) => `${s.name}: ${s.problem}`).join("\n")}\n`);
  }
  return 0;
}

/**
 * `runyard agents install [names...]`: the pinned CLIs into `<home>/agents`, all of them when
 * none is named. Progress goes to stderr, one line per installed agent to stdout. Exit 0 all
 * installed, 1 one failed, 2 a name runyard does not know.
 */
export async function agentsInstall(names: string[], flags: InstallFlags, ctx: CliContext): Promise<number> {
  const wanted = [
    ...names.map((name) => name.replace(/-/g, "_")),
    ...flagAgents.filter(([flag]) => flags[flag]).map(([, name]) => name),
  ];
  const installable = cliAdapters().map((adapter) => adapter.name);
  for (const name of wanted) {
    const adapter = adapterFor(name);
    if (adapter?.package) continue;
    throw new RunyardError(
      "USAGE",
      adapter ? `${name} is built into runyard: there is nothing to install` : `unknown agent "${name}"`,
      { hint: `Agents to install: ${installable.join(", ")}.` },
    );
  }
  const chosen = wanted.length > 0 ? [...new Set(wanted)] : installable;
  const results = await installAgents(chosen, {
    agentsHome: agentsHome(ctx),
    env: ctx.env,
    onProgress: (line) => ctx.stderr.write(`${line}\n`),
  });
  let failed = 0;
  for (const result of results) {
    if (result.ok) {
      ctx.stdout.write(`${result.name} ${result.version} installed at ${result.path}\n`);
      continue;
    }
    failed += 1;
    ctx.stderr.write(`error: ${result.name}: ${result.error}\nhint: ${result.hint}\n`);
  }
  return failed === 0 ? 0 : 1;
}
