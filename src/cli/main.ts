import { Command, CommanderError } from "commander";
import type { Config } from "../core/config.js";
import { ConfigError } from "../core/config-error.js";
import { RunyardError } from "../core/errors.js";
import type { RunConfig } from "../core/run-config.js";
import { printableLines } from "../core/terminal-text.js";
import { outputClosed } from "./closed-output.js";
import type { CliContext } from "./context.js";
import type { OutputOptions } from "./process-context.js";
import { terminalSafe } from "./terminal-stream.js";
import { version } from "./version.js";

type Overrides = Partial<Record<keyof Config, unknown>>;
/** Builds a command's context; loads the config schema (zod) only for a command that runs. */
type ContextFor = (overrides?: Overrides, configFile?: string, output?: OutputOptions) => Promise<CliContext>;
/** Builds `runyard run`'s context: only the settings it reads, checked without zod's whole weight. */
type RunContextFor = (overrides?: Overrides, output?: OutputOptions) => Promise<CliContext<RunConfig>>;

/** `--raw`, on the commands that print what steps, agents and bots printed. */
const rawHelp =
  "print output as it came: on a terminal, escape sequences other than colours are dropped unless this is given";
const rawOption = (command: Command): Command => command.option("--raw", rawHelp);

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** The health check flags of `bot start` and `bot update`. */
function botHealthOptions(command: Command): Command {
  return command
    .option("--health-cmd <cmd>", "health check: a shell command run inside the container; exit 0 is healthy")
    .option(
      "--health-http <port/path>",
      "health check: GET this port and path inside the container's network, e.g. 8080/healthz",
    )
    .option("--health-interval <duration>", "time between probes (default 30s)")
    .option("--health-timeout <duration>", "a probe that takes longer fails and is killed (default 5s)")
    .option("--health-retries <n>", "failures in a row that make it unhealthy (default 3)")
    .option(
      "--health-start-period <duration>",
      "failures this soon after the start do not count (default 0s)",
    );
}

const botHealthHelp = `
Health: with --health-cmd or --health-http the bot is "starting" until a probe passes, "running" while
they pass, and "unhealthy" after --health-retries failures in a row; an unhealthy bot is restarted
if its --restart policy says so. \`runyard bot status NAME\` shows the last probe's output.`;

/** How long `bot update`, `rollback` and `env set|unset` wait for the new version. */
function updateWaitOptions(command: Command): Command {
  return command
    .option(
      "--min-ready <duration>",
      "without a health check: how long the new version must run first (default 10s)",
    )
    .option(
      "--timeout <duration>",
      "give up on the new version after this long, build included (default 4m, at most 280s)",
    );
}

/** Flags shared by the commands that talk to a server. */
function serverFlags(command: Command): Command {
  return command
    .option(
      "--server <url>",
      "server URL; replicas comma-separated, the first that accepts a connection is used (RUNYARD_SERVER_URL; default http://127.0.0.1:8088)",
    )
    .option("--token <token>", "API token (RUNYARD_TOKEN)");
}

/** Flags of the commands that create something on a server (a run, a bot, an answer). */
function submitFlags(command: Command): Command {
  return serverFlags(command).option(
    "--retry-for <duration>",
    "while the server answers 503 or the connection drops, send the submit again (same Idempotency-Key) for this long: 2m (default), 90s, 0 for never (RUNYARD_RETRY_FOR)",
  );
}

const apiOverrides = (flags: { server?: string; token?: string; retryFor?: string }): Overrides => ({
  serverUrl: flags.server,
  token: flags.token,
  retryFor: flags.retryFor,
});

/** `--shutdown-grace` is in seconds, as people say it; the config keeps milliseconds. */
function graceMs(seconds: string | undefined): unknown {
  if (seconds === undefined) return undefined;
  const value = Number(seconds);
  if (!Number.isFinite(value) || value < 0) {
    throw new RunyardError("USAGE", `--shutdown-grace ${seconds}: expected a number of seconds, like 30`);
  }
  return Math.round(value * 1000);
}

/** The flags `up` and `server` share, as config overrides. */
function serveOverrides(flags: {
  host?: string;
  port?: string;
  home?: string;
  shutdownGrace?: string;
  database?: string;
}): Overrides {
  return {
    host: flags.host,
    port: flags.port,
    home: flags.home,
    databaseUrl: flags.database,
    shutdownGraceMs: graceMs(flags.shutdownGrace),
  };
}

/** Builds the command tree; each action sets the process exit code. */
function buildProgram(
  ctx: ContextFor,
  runCtx: RunContextFor,
  setExit: (code: number) => void,
  stderr: (s: string) => void,
): Command {
  const program = new Command("runyard")
    .description("Self-hosted runner platform: YAML workflows, AI coding agents, long-running bots.")
    .version(version)
    .exitOverride()
    // Options after a command are that command's: `workflow show NAME --version 2` is not `-V`.
    .enablePositionalOptions()
    .configureOutput({ writeErr: stderr })
    .showSuggestionAfterError(true);

  const run = program
    .command("run")
    .description(
      "run a workflow file here, or on a server with --server or RUNYARD_SERVER_URL (exit 0 success, 1 failed, 2 invalid, 130 canceled)",
    )
    .argument("<file>", "workflow or playbook YAML")
    .option("--var <NAME=value>", "set a variable (repeatable)", collect, [])
    .option("--json", "print the run's events as JSON lines")
    .option("-q, --quiet", "print only failures and the result")
    .option("--no-rollback", "when the run fails, do not run its steps' rollback:");
  submitFlags(rawOption(run)).action(async (file: string, flags) => {
    const context = await runCtx(apiOverrides(flags), { raw: flags.raw });
    // A server named by --server or RUNYARD_SERVER_URL (as the flag's help says) takes the run.
    setExit(
      context.config.serverUrl
        ? await (await import("./runs.js")).submitRun(
            file,
            flags,
            await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
          )
        : await (await import("./run.js")).runCommand(file, flags, context),
    );
  });

  program
    .command("validate")
    .description("check a workflow file and report every problem with its line and column")
    .argument("<file>", "workflow or playbook YAML")
    .action(async (file: string) =>
      setExit(await (await import("./validate.js")).validateCommand(file, await ctx())),
    );

  const serveOptions = (command: Command): Command =>
    command
      .option("--host <address>", "address to bind (RUNYARD_HOST; default 127.0.0.1)")
      .option("--port <port>", "port (RUNYARD_PORT; default 8088)")
      .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard)")
      .option(
        "--database <url>",
        "a PostgreSQL database instead of <home>/runyard.db (RUNYARD_DATABASE_URL); several servers may share one",
      )
      .option(
        "--shutdown-grace <seconds>",
        "on SIGTERM, how long running steps may finish (RUNYARD_SHUTDOWN_GRACE_MS; default 30)",
      )
      .option("--config <file>", "config file (YAML)");
  serveOptions(
    program.command("up").description("start the server with a local runner (SQLite under ./.runyard)"),
  ).action(async (flags) =>
    setExit(
      await (await import("./server.js")).upCommand(flags, await ctx(serveOverrides(flags), flags.config)),
    ),
  );
  serveOptions(
    program.command("server").description("start the control plane; runners join with `runyard runner`"),
  )
    .option("--memory", "keep everything in memory (nothing persists)")
    .action(async (flags) =>
      setExit(
        await (await import("./server.js")).serverCommand(
          flags,
          await ctx(serveOverrides(flags), flags.config),
        ),
      ),
    );

  program
    .command("runner")
    .description("join a server and run its jobs (RUNYARD_* or ADOS_* env, flags, or --config)")
    .option(
      "--server <url,...>",
      "server URL, or several replicas comma-separated to fail over between (RUNYARD_SERVER_URL / ADOS_API_URL)",
    )
    .option("--token <token>", "runner token (RUNYARD_TOKEN / ADOS_TOKEN)")
    .option("--id <id>", "runner id (RUNYARD_RUNNER_ID)")
    .option("--group <group>", "runner group (RUNYARD_GROUP)")
    .option("--labels <a,b>", "labels (RUNYARD_LABELS)")
    .option("--capacity <n>", "runs at once (RUNYARD_CAPACITY)")
    .option(
      "--shared",
      "take runs of every tenant too, not only runs outside any tenant; needs a working bubblewrap (bwrap) and a runner token made without --tenant (RUNYARD_SHARED=1)",
    )
    .option("--mode <mode>", "chat, issue or all (RUNYARD_MODE)")
    .option("--workspace-dir <dir>", "working folder (RUNYARD_WORKSPACE_DIR)")
    .option(
      "--home <dir>",
      "state folder; the runner keeps its journals in <home>/runners/<id> (RUNYARD_HOME)",
    )
    .option(
      "--shutdown-grace <seconds>",
      "on SIGTERM, how long running steps may finish (RUNYARD_SHUTDOWN_GRACE_MS; default 30)",
    )
    .option("--config <file>", "config file (YAML)")
    .option(
      "--json",
      "log and status lines as JSON, one object a line (RUNYARD_LOG_FORMAT=json; default: plain lines on a terminal, JSON otherwise)",
    )
    .action(async (flags) =>
      setExit(
        await (await import("./runner.js")).runnerCommand(
          await ctx(
            {
              serverUrl: flags.server,
              token: flags.token,
              runnerId: flags.id,
              group: flags.group,
              labels: flags.labels,
              capacity: flags.capacity,
              shared: flags.shared,
              mode: flags.mode,
              workspaceDir: flags.workspaceDir,
              home: flags.home,
              shutdownGraceMs: graceMs(flags.shutdownGrace),
              ...(flags.json ? { logFormat: "json" } : {}),
            },
            flags.config,
          ),
        ),
      ),
    );

  program
    .command("agent-server")
    .description("listen for direct dispatch from workflows (inventory hosts with address:)")
    .requiredOption("--addr <addr>", "address to listen on, e.g. :7072 or 0.0.0.0:7072")
    .option("--token <token>", "token dispatchers must send (RUNYARD_TOKEN)")
    .action(async (flags) =>
      setExit(await (await import("./agent-server.js")).agentServerCommand(flags, await ctx())),
    );

  const token = program.command("token").description("manage tokens");
  serverFlags(
    token
      .command("create")
      .description("create a token (printed once)")
      .option("--runner", "a runner token")
      .option("--user", "a user token")
      .option("--admin", "an admin token")
      .option("--group <group>", "bind a runner token to a group")
      .option("--name <name>", "a name to tell it by")
      .option("--tenant <id>", "the tenant it belongs to")
      .option("--expires-at <time>", "when it stops working (ISO-8601); default never")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (flags) =>
    setExit(
      await (await import("./token.js")).tokenCreate(
        flags,
        await ctx({ ...apiOverrides(flags), home: flags.home }),
      ),
    ),
  );
  serverFlags(
    token
      .command("list")
      .description("list tokens: an admin sees all, a user their own")
      .option("--json", "JSON output")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (flags) =>
    setExit(
      await (await import("./token.js")).tokenList(
        flags,
        await ctx({ ...apiOverrides(flags), home: flags.home }),
      ),
    ),
  );
  serverFlags(
    token
      .command("revoke")
      .argument("<id>", "the token id (from `token list`), not the secret")
      .description("revoke a token: it stops working at once")
      .option("--home <dir>", "data folder, when not going through a server"),
  ).action(async (id: string, flags) =>
    setExit(
      await (await import("./token.js")).tokenRevoke(
        id,
        flags,
        await ctx({ ...apiOverrides(flags), home: flags.home }),
      ),
    ),
  );

  const user = program.command("user").description("manage the users who log in (admins only)");
  const userCtx = (flags: { server?: string; token?: string; home?: string }) =>
    ctx({ ...apiOverrides(flags), home: flags.home });
  const userFlags = (command: Command): Command =>
    serverFlags(command).option("--home <dir>", "data folder, when not going through a server");
  userFlags(
    user
      .command("add")
      .argument("<name>", "the username")
      .description("add a user; prints a one-time random password unless --password-stdin")
      .option("--role <role>", "admin or member")
      .option("--tenant <id>", "the tenant the user belongs to (members need one)")
      .option("--password-stdin", "read the password from standard input"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./user.js")).userAdd(name, flags, await userCtx(flags))),
  );
  userFlags(user.command("list").description("list users").option("--json", "JSON output")).action(
    async (flags) => setExit(await (await import("./user.js")).userList(flags, await userCtx(flags))),
  );
  userFlags(
    user
      .command("remove")
      .argument("<name>", "the username")
      .description("remove a user: sessions end, personal tokens are deleted"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./user.js")).userRemove(name, flags, await userCtx(flags))),
  );
  userFlags(
    user
      .command("passwd")
      .argument("<name>", "the username")
      .description("set a new password (random, printed once, unless --password-stdin); sessions end")
      .option("--password-stdin", "read the password from standard input"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./user.js")).userPasswd(name, flags, await userCtx(flags))),
  );

  const secret = program
    .command("secret")
    .description("manage your tenant's secrets; workflows name them in secrets: (values never shown)");
  const tenantOption = "--tenant <id>";
  const tenantHelp = "admin tokens: the tenant whose secrets to manage (default: outside any tenant)";
  serverFlags(
    secret
      .command("set")
      .description("store a secret, or replace its value; the value is read from stdin")
      .argument("<name>", "an environment-variable name, e.g. DEPLOY_KEY")
      .argument("[value]", "refused: a value on the command line lands in shell history")
      .option(tenantOption, tenantHelp),
  ).action(async (name: string, value: string | undefined, flags) =>
    setExit(
      await (await import("./secret.js")).secretSet(name, value, flags, await ctx(apiOverrides(flags))),
    ),
  );
  serverFlags(
    secret
      .command("list")
      .description("the names of the stored secrets, never their values")
      .option(tenantOption, tenantHelp)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./secret.js")).secretList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    secret
      .command("rm")
      .description("remove a secret; runs that list it fail at submit from then on")
      .argument("<name>")
      .option(tenantOption, tenantHelp),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./secret.js")).secretRemove(name, flags, await ctx(apiOverrides(flags)))),
  );

  const workflow = program
    .command("workflow")
    .description("save workflows on a server under a name, in versions, and run them by name");
  const workflowTenant = "platform admins: the tenant whose saved workflows to act on";
  serverFlags(
    workflow
      .command("save")
      .description(
        "check a workflow file and save it as the next version of its name (live at once unless others' hooks or schedules run it)",
      )
      .argument("<file>", "workflow YAML")
      .option("--name <name>", "the name to save it under (default: the file name without extension)")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (file: string, flags) =>
    setExit(await (await import("./workflow.js")).workflowSave(file, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    workflow
      .command("list")
      .description("the saved workflows of your tenant")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./workflow.js")).workflowList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    workflow
      .command("show")
      .description("a saved workflow's text, versions and schedules")
      .argument("<name>")
      .option("--version <n>", "this version instead of the newest")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./workflow.js")).workflowShow(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    workflow
      .command("promote")
      .description("make a pending version the one the workflow's hooks and schedules run")
      .argument("<name>")
      .argument("<version>", "the pending version (`runyard workflow show NAME` lists them)")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (name: string, version: string, flags) =>
    setExit(
      await (await import("./workflow.js")).workflowPromote(
        name,
        version,
        flags,
        await ctx(apiOverrides(flags)),
      ),
    ),
  );
  serverFlags(
    workflow
      .command("rm")
      .description("remove a saved workflow: every version and its schedules")
      .argument("<name>")
      .option(tenantOption, workflowTenant),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./workflow.js")).workflowRemove(name, flags, await ctx(apiOverrides(flags))),
    ),
  );
  submitFlags(
    workflow
      .command("run")
      .description("run a saved workflow (the newest version unless --version)")
      .argument("<name>")
      .option("--var <NAME=value>", "set a variable (repeatable)", collect, [])
      .option("--version <n>", "run this version")
      .option("-f, --follow", "stream the run's output until it ends (exit code as `runyard run`)")
      .option("--json", "JSON output (with --follow: the run's events as JSON lines)")
      .option("-q, --quiet", "with --follow: print only failures and the result")
      .option("--raw", rawHelp)
      .option(tenantOption, workflowTenant),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./workflow.js")).workflowRun(
        name,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
  );
  const schedule = program
    .command("schedule")
    .description("the schedules of saved workflows (their `schedule:` entries)");
  serverFlags(
    schedule
      .command("list")
      .description("the schedules of your tenant's saved workflows: next tick, last tick and what it did")
      .option(tenantOption, workflowTenant)
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./schedule.js")).scheduleList(flags, await ctx(apiOverrides(flags)))),
  );

  const forge = program
    .command("forge")
    .description("code forges whose labelled issues and /runyard comments start agent tasks");
  serverFlags(
    forge
      .command("add")
      .description("add a repo; prints its webhook URL and secret (once)")
      .argument(
        "<kind>",
        "github (github.com or GitHub Enterprise), gitlab (gitlab.com or self-managed), gitea (Gitea or Forgejo)",
      )
      .requiredOption(
        "--repo <OWNER/NAME>",
        "the repo whose issues start tasks (GitLab: the project's full path)",
      )
      .option(
        "--url <api>",
        "the forge's API or server URL (default https://api.github.com, https://gitlab.com, https://codeberg.org)",
      )
      .option("--secret-stdin", "read the forge's API token from standard input (required)")
      .option("--label <label>", "the issue label that starts a task (default runyard)")
      .option("--agent <name>", "the agent tasks run with (default claude_code)")
      .option("--test <command>", "run this shell command after the agent; failing it fails the task")
      .option("--sandbox <image>", "run the agent in a hardened container of this image")
      .option("--json", "JSON output"),
  ).action(async (kind: string, flags) =>
    setExit(await (await import("./forge.js")).forgeAdd(kind, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    forge.command("list").description("the forges of your tenant").option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./forge.js")).forgeList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(forge.command("rm").description("remove a forge").argument("<id>")).action(
    async (id: string, flags) =>
      setExit(await (await import("./forge.js")).forgeRemove(id, await ctx(apiOverrides(flags)))),
  );

  const hook = program
    .command("hook")
    .description("signed webhooks that run a saved workflow (GitHub's X-Hub-Signature-256)");
  serverFlags(
    hook
      .command("create")
      .description("make a hook; a generated secret is printed once")
      .argument("<name>", "unique within your tenant; deliveries go to the URL printed, /api/hooks/ID")
      .requiredOption("--workflow <name>", "the saved workflow each delivery runs")
      .option("--secret-stdin", "read the secret from standard input instead of generating one")
      .option(
        "--var <NAME=$.path>",
        "an input the workflow declares (inputs:, HOOK_...) picked from the delivery's JSON body (repeatable)",
        collect,
        [],
      )
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./hook.js")).hookCreate(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    hook.command("list").description("the hooks of your tenant").option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./hook.js")).hookList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    hook
      .command("rm")
      .description("remove a hook")
      .argument("<name>")
      .option("--tenant <id>", "platform admins: the tenant whose hook of that name to remove"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./hook.js")).hookRemove(name, flags, await ctx(apiOverrides(flags)))),
  );

  serverFlags(
    program
      .command("audit")
      .description("the audit log, newest first: logins, token, user and secret changes, cancels (admins)")
      .option("--action <action>", "only this action, e.g. login, token.create, secret.set, run.cancel")
      .option("--limit <n>", "how many entries (default 50, at most 500)")
      .option("--tenant <id>", "platform admins: one tenant's entries")
      .option("--since <time>", "only entries at or after this ISO-8601 time")
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./audit.js")).auditList(flags, await ctx(apiOverrides(flags)))),
  );

  serverFlags(
    program
      .command("usage")
      .description(
        "agents' spend: tokens and dollars per user, agent, model or tenant (members: their tenant's)",
      )
      .option("--tenant <id>", "platform admins: one tenant's spend (default: every tenant)")
      .option("--by <grouping>", "user, agent, model or tenant (default user)")
      .option("--since <span>", "a span back from now (24h, 7d, 2w) or a UTC date (default 7d)")
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./budget.js")).usageShow(flags, await ctx(apiOverrides(flags)))),
  );

  const tenant = program
    .command("tenant")
    .description("a tenant's settings (its agents' spend budget, its bots' alert rules)");
  for (const [scope, parent, noun] of [
    ["tenant", tenant, "tenant"],
    ["user", user, "user"],
  ] as const) {
    const budget = parent
      .command("budget")
      .description(`the ${noun}'s agent spend budget in US dollars per UTC day and month`);
    serverFlags(
      budget
        .command("set")
        .argument("<name>", `the ${noun === "tenant" ? "tenant's id" : "username"}`)
        .description(
          scope === "tenant"
            ? "set a tenant's budget (platform admins); a turn past it is refused with BUDGET_EXCEEDED"
            : "set a user's budget (admins); a turn past it is refused with BUDGET_EXCEEDED",
        )
        .option("--usd-per-day <usd>", "dollars per UTC day")
        .option("--usd-per-month <usd>", "dollars per UTC calendar month"),
    ).action(async (name: string, flags) =>
      setExit(
        await (await import("./budget.js")).budgetSet(scope, name, flags, await ctx(apiOverrides(flags))),
      ),
    );
    serverFlags(
      budget
        .command("show")
        .argument("<name>")
        .description("the limits, where they come from, and what each period has spent")
        .option("--json", "JSON output"),
    ).action(async (name: string, flags) =>
      setExit(
        await (await import("./budget.js")).budgetShow(scope, name, flags, await ctx(apiOverrides(flags))),
      ),
    );
    serverFlags(
      budget
        .command("clear")
        .argument("<name>")
        .description("remove the budget set; the config file's applies again"),
    ).action(async (name: string, flags) =>
      setExit(await (await import("./budget.js")).budgetClear(scope, name, await ctx(apiOverrides(flags)))),
    );
  }

  const tenantBotAlerts = tenant
    .command("bot-alerts")
    .description("the alert rules every bot of a tenant is watched for (a bot's own of a kind override)");
  serverFlags(
    tenantBotAlerts
      .command("set")
      .argument("<tenant>", "the tenant's id")
      .description("set them (the tenant's admins, platform admins); replaces the rules set before")
      .option(
        "--alert <rule>",
        "memory>80%/5m, restarts>=3/10m or unhealthy, one per kind (repeatable)",
        collect,
        [],
      )
      .option(
        "--notify <url>",
        "where they are POSTed for bots with no notify URL of their own (repeatable)",
        collect,
        [],
      )
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./tenant-bot-alerts.js")).tenantBotAlertsSet(
        name,
        flags,
        await ctx(apiOverrides(flags)),
      ),
    ),
  );
  serverFlags(
    tenantBotAlerts
      .command("show")
      .argument("<tenant>")
      .description("the rules and who set them (anyone of the tenant)")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./tenant-bot-alerts.js")).tenantBotAlertsShow(
        name,
        flags,
        await ctx(apiOverrides(flags)),
      ),
    ),
  );
  serverFlags(
    tenantBotAlerts
      .command("clear")
      .argument("<tenant>")
      .description("remove them; bots keep their own alerts"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./tenant-bot-alerts.js")).tenantBotAlertsClear(
        name,
        await ctx(apiOverrides(flags)),
      ),
    ),
  );

  const agents = program
    .command("agents")
    .description("the coding agents: installed (path, version), credentials present, usable")
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard); CLIs are under <home>/agents")
    .option("--json", "JSON output")
    .action(async (flags) =>
      setExit(await (await import("./agents.js")).agentsList(flags, await ctx({ home: flags.home }))),
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
        await (await import("./agents.js")).agentsInstall(
          names,
          flags,
          await ctx({ home: flags.home ?? agents.opts().home }),
        ),
      ),
    );

  const db = program.command("db").description("move and inspect the store (SQLite file or PostgreSQL)");
  db.command("copy")
    .description(
      "copy every row into an empty database, e.g. the SQLite home into PostgreSQL (stop servers first)",
    )
    .requiredOption(
      "--from <home|file|url>",
      "the source: a home folder, its runyard.db, or a postgres:// URL",
    )
    .requiredOption("--to <url|file>", "the empty target: a postgres:// URL (or a SQLite file)")
    .option("--batch-size <rows>", "rows per transaction (default 2000)")
    .action(async (flags) => setExit(await (await import("./db.js")).dbCopy(flags, await ctx())));
  db.command("status")
    .description(
      "which database, its schema version, pending migrations and rows per table (changes nothing)",
    )
    .option("--database <url|file>", "default: RUNYARD_DATABASE_URL, else <home>/runyard.db")
    .option("--home <dir>", "data folder (RUNYARD_HOME; default ./.runyard)")
    .option("--json", "JSON output")
    .action(async (flags) =>
      setExit(await (await import("./db.js")).dbStatus(flags, await ctx({ home: flags.home }))),
    );

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
    setExit(
      await (await import("./agent.js")).agentRun(
        prompt,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
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
    setExit(
      await (await import("./agent.js")).agentSend(
        run,
        text,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
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
    setExit(
      await (await import("./agent.js")).agentPush(
        run,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
  );

  const bot = program
    .command("bot")
    .summary("long-running bots in hardened Docker containers, with the avtomatika-bot CLI's flags")
    .description(
      "long-running bots in hardened Docker containers, with the avtomatika-bot CLI's flags (AVTOMATIKA_URL and AVTOMATIKA_TOKEN work as RUNYARD_SERVER_URL and RUNYARD_TOKEN)",
    );
  submitFlags(
    botHealthOptions(
      bot
        .command("start")
        .argument("<name>", "the bot's name, e.g. echo-bot")
        .description(
          "build (or pull) and start a bot; shows the progress until it runs, exit 1 if it crashes",
        )
        .option(
          "--simple <files...>",
          "simple: your code files (sent by base name); runyard writes the Dockerfile",
        )
        .option(
          "--entrypoint <file>",
          "simple: the file to run (default: the only file, main.py, bot.py or index.js)",
        )
        .option(
          "-r, --requirement <spec>",
          "simple: a pip (or npm) package, or a requirements .txt file (repeatable)",
          collect,
          [],
        )
        .option(
          "--custom <dir|archive|git-url>",
          "custom: a folder, .tar/.tar.gz/.zip or git URL with a Dockerfile at its top",
        )
        .option("--ref <ref>", "custom git: the branch or tag")
        .option("--image <ref>", "image: a ready image, e.g. ghcr.io/user/bot:v1")
        .option("--registry-user <user>", "image: the private registry's username")
        .option("--registry-password-stdin", "image: read the registry password (or token) from stdin")
        .option("--registry-server <host>", "image: the registry's host, when not the image's")
        .option(
          "-e, --env <NAME=value>",
          "container env; NAME alone passes this shell's value (repeatable)",
          collect,
          [],
        )
        .option("--secret <NAME>", "a stored secret given to the container as env (repeatable)", collect, [])
        .option("--restart <policy>", "no (default), on-failure or always")
        .option("--max-restarts <n>", "crashes in a row before it stays crashed (default 5)")
        .option("--lifetime <seconds>", "stop it (timeout) after this long; at most the server's 24 h")
        .option("--group <group>", "the runner group whose Docker runs it")
        .option("--label <label>", "a runner label it needs (repeatable)", collect, [])
        .option(
          "--webhook <port>",
          "take inbound webhooks: POSTs to its hook URL go to this port in the container",
        )
        .option(
          "--alert <rule>",
          "memory>80%/5m, restarts>=3/10m or unhealthy: POST the --notify URLs when it holds (repeatable)",
          collect,
          [],
        )
        .option("--notify <url>", "where its alerts are POSTed (repeatable)", collect, [])
        .option("--log-max-mb <n>", "the whole log its runner keeps for --download (default 8 MiB)")
        .option("--check <seconds>", "once running, watch this long for an immediate crash (default 3)")
        .option("-d, --detach", "return once submitted, without watching")
        .option("--json", "JSON output: the start answer, then the bot")
        .option("--env-file <file>", "container env from a file of NAME=value lines (-e wins)")
        .addHelpText("after", botHealthHelp),
    ),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot.js")).botStart(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot.command("stop").argument("<name>").description("stop a bot: SIGTERM, SIGKILL after 10 s"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot.js")).botStop(name, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot
      .command("logs")
      .argument("<name>")
      .description("a bot's output: every container of its current life")
      .option("--tail <n>", "the last N lines")
      .option("--since <when>", "lines since 10m, 2h, 1d or an ISO time")
      .option("-f, --follow", "keep printing new lines until the bot ends (Ctrl-C to stop watching)")
      .option("--build", "the build's (or pull's) output instead")
      .option("--previous", "the last lines of the container that ended (kept after a crash)")
      .option("--grep <text>", "only lines holding this text (any case)")
      .option(
        "--download <file>",
        "the whole log its runner keeps (secrets masked) into a file, - for stdout",
      )
      .option("--raw", rawHelp)
      .option("--json", "one JSON object per line"),
  ).action(async (name: string, flags) =>
    setExit(
      await (await import("./bot.js")).botLogs(
        name,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
  );
  serverFlags(
    bot
      .command("stats")
      .argument("<name>")
      .description("CPU, memory, network, pids and restarts over time (kept 7 days)")
      .option("--since <when>", "1h (default), 30m, 24h, 7d or an ISO time")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-history.js")).botStats(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot
      .command("alerts")
      .argument("<name>")
      .description("a bot's alerts and when they held")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-history.js")).botAlerts(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot
      .command("webhook")
      .argument("<name>")
      .description("the URL (with its secret) that forwards POSTs to the bot's --webhook port")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-history.js")).botWebhook(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(bot.command("list").description("your bots").option("--json", "JSON output")).action(
    async (flags) => setExit(await (await import("./bot.js")).botList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot
      .command("status")
      .argument("<name>")
      .description("state, uptime, restarts, exit code, OOM, memory and CPU now, error and hint")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot.js")).botStatus(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(bot.command("rm").argument("<name>").description("remove a bot (stopping it first)")).action(
    async (name: string, flags) =>
      setExit(await (await import("./bot.js")).botRemove(name, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    botHealthOptions(
      updateWaitOptions(
        bot
          .command("update")
          .argument("<name>")
          .description(
            "start a new version beside the running one (new code, archive, image or settings); the old one stops once the new one is healthy, and keeps running if it is not (BOT_UPDATE_FAILED)",
          )
          .option("--simple <files...>", "simple: the new code files")
          .option("--entrypoint <file>", "simple: the file to run")
          .option("-r, --requirement <spec>", "simple: a pip (or npm) package (repeatable)", collect, [])
          .option("--custom <dir|archive|git-url>", "custom: a folder, archive or git URL with a Dockerfile")
          .option("--ref <ref>", "custom git: the branch or tag")
          .option("--image <ref>", "image: the new image")
          .option("--registry-user <user>", "image: the private registry's username")
          .option("--registry-password-stdin", "image: read the registry password from stdin")
          .option("--registry-server <host>", "image: the registry's host")
          .option(
            "-e, --env <NAME=value>",
            "the whole new env (replaces the running one's; repeatable)",
            collect,
            [],
          )
          .option("--env-file <file>", "the whole new env from a file of NAME=value lines")
          .option(
            "--secret <NAME>",
            "stored secrets given as env (replaces the list; repeatable)",
            collect,
            [],
          )
          .option("--restart <policy>", "no, on-failure or always")
          .option("--max-restarts <n>", "crashes in a row before it stays crashed")
          .option("--json", "JSON output"),
      ),
    ).addHelpText("after", botHealthHelp),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-update.js")).botUpdate(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    updateWaitOptions(
      bot
        .command("rollback")
        .argument("<name>")
        .description("return to the version before the current one, through the same safe update")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-update.js")).botRollback(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    bot
      .command("versions")
      .argument("<name>")
      .description("a bot's versions, newest first")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-update.js")).botVersions(name, flags, await ctx(apiOverrides(flags)))),
  );
  const botEnv = bot
    .command("env")
    .description("a bot's environment: list, set, unset (a change restarts it safely)");
  serverFlags(
    botEnv
      .command("list")
      .argument("<name>")
      .description("its variables, secrets masked")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("./bot-update.js")).botEnvList(name, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    updateWaitOptions(
      botEnv
        .command("set")
        .argument("<name>")
        .argument("[pairs...]", "NAME=value, or NAME alone for this shell's value")
        .description("set variables; the bot restarts through a safe update")
        .option("--secret <NAME>", "one secret variable whose value is read from stdin (shown masked)")
        .option("--env-file <file>", "variables from a file of NAME=value lines")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, pairs: string[], flags) =>
    setExit(
      await (await import("./bot-update.js")).botEnvSet(name, pairs, flags, await ctx(apiOverrides(flags))),
    ),
  );
  serverFlags(
    updateWaitOptions(
      botEnv
        .command("unset")
        .argument("<name>")
        .argument("<variables...>")
        .description("remove variables; the bot restarts through a safe update")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, names: string[], flags) =>
    setExit(
      await (await import("./bot-update.js")).botEnvUnset(name, names, flags, await ctx(apiOverrides(flags))),
    ),
  );

  const runs = program.command("runs").description("look at and control runs on a server");
  serverFlags(
    runs
      .command("list")
      .description("list runs, newest first")
      .option("--status <status>", "only runs in this state")
      .option("--kind <kind>", "workflow, agent or bot")
      .option("--limit <n>", "how many")
      .option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./runs.js")).runsList(flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    runs
      .command("show")
      .argument("<run>")
      .description("one run's state and steps")
      .option("--json", "JSON output"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("./runs.js")).runsShow(id, flags, await ctx(apiOverrides(flags)))),
  );
  serverFlags(
    runs
      .command("logs")
      .argument("<run>")
      .description("a run's output")
      .option("-f, --follow", "keep following until the run ends")
      .option("--raw", rawHelp)
      .option("--json", "events as JSON lines"),
  ).action(async (id: string, flags) =>
    setExit(
      await (await import("./runs.js")).runsLogs(
        id,
        flags,
        await ctx(apiOverrides(flags), undefined, { raw: flags.raw }),
      ),
    ),
  );
  serverFlags(runs.command("cancel").argument("<run>").description("cancel a queued or running run")).action(
    async (id: string, flags) =>
      setExit(await (await import("./runs.js")).runsCancel(id, await ctx(apiOverrides(flags)))),
  );
  submitFlags(
    runs
      .command("retry")
      .argument("<run>")
      .description(
        "retry a finished workflow run from a step: a new run that keeps the steps that succeeded before it (in a graph: those it does not depend on) and runs the rest",
      )
      .option("--from <step>", "the step to run again from (default: the first step that did not succeed)")
      .option("--workflow <file>", "an edited workflow file that replaces the run's steps from there on")
      .option("--var <NAME=value>", "set a variable over the run's (repeatable)", collect, [])
      .option("-f, --follow", "follow the new run until it ends (exit 0 success, 1 failed, 130 canceled)")
      .option("--json", "JSON output"),
  ).action(async (id: string, flags) =>
    setExit(await (await import("./runs-retry.js")).runsRetry(id, flags, await ctx(apiOverrides(flags)))),
  );
  submitFlags(
    runs
      .command("run-step")
      .argument("<run>")
      .argument("<step>", "the step to run")
      .description("run one step of a finished workflow run again, with every variable the run exported")
      .option("-f, --follow", "follow the new run until it ends (exit 0 success, 1 failed, 130 canceled)")
      .option("--json", "JSON output"),
  ).action(async (id: string, step: string, flags) =>
    setExit(
      await (await import("./runs-retry.js")).runsRunStep(id, step, flags, await ctx(apiOverrides(flags))),
    ),
  );
  for (const verb of ["approve", "reject"] as const) {
    submitFlags(
      runs
        .command(verb)
        .argument("<run>")
        .argument("<step>", "the approval step's name")
        .description(
          verb === "approve"
            ? "approve a waiting approval step: it succeeds and the run goes on"
            : "reject a waiting approval step: it fails (APPROVAL_REJECTED), and so does the run",
        )
        .option("--comment <text>", "why; kept with the answer in the run's events and the audit log")
        .option(
          "--input <NAME=value>",
          "approve: fill in one of the step's inputs (repeatable); the values become its exports",
          collect,
          [],
        )
        .option("--json", "JSON output"),
    ).action(async (id: string, step: string, flags) =>
      setExit(
        await (await import("./approvals.js")).answerApproval(
          id,
          step,
          verb,
          flags,
          await ctx(apiOverrides(flags)),
        ),
      ),
    );
  }
  serverFlags(
    program.command("runners").description("list the server's runners").option("--json", "JSON output"),
  ).action(async (flags) =>
    setExit(await (await import("./runs.js")).runnersList(flags, await ctx(apiOverrides(flags)))),
  );
  return program;
}

/** The CLI entry point; resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const stderr = terminalSafe(process.stderr, false);
  const write = (s: string): void => {
    stderr.write(s);
  };
  // A reader that stops early (`runyard runs logs ID | head`) closes the pipe (closed-output.ts).
  let closed = false;
  process.stdout.on("error", (error: NodeJS.ErrnoException) => {
    if (error.code !== "EPIPE") throw error;
    if (closed) return;
    closed = true;
    outputClosed(write);
  });
  let exitCode = 0;
  const program = buildProgram(
    async (overrides, configFile, output) =>
      (await import("./process-context.js")).processContext(overrides, configFile, output),
    async (overrides, output) => (await import("./process-context.js")).runContext(overrides, output),
    (code) => {
      exitCode = code;
    },
    write,
  );
  try {
    await program.parseAsync(argv);
    return exitCode;
  } catch (error) {
    return reportError(error, write);
  }
}

function reportError(error: unknown, write: (s: string) => void): number {
  if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
  if (error instanceof ConfigError) {
    write(`error: ${error.message}\n`);
    return 2;
  }
  if (error instanceof RunyardError) {
    // A server's message and hint may quote what a user chose (a name, a group): plain text only.
    write(
      `error: ${printableLines(error.message)}\n${error.hint ? `hint: ${printableLines(error.hint)}\n` : ""}`,
    );
    if (error.code === "HOST_UNREACHABLE" || error.code === "INTERNAL") return 1;
    return error.status >= 400 ? 2 : 1;
  }
  write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return 1;
}
