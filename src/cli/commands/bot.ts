import type { Command } from "commander";
import {
  botHealthHelp,
  botHealthOptions,
  type CommandDeps,
  collect,
  rawHelp,
  serverFlags,
  submitFlags,
  updateWaitOptions,
} from "./options.js";

/** `runyard bot`: long-running bots in containers. */
export function registerBot(program: Command, { api, setExit }: CommandDeps): void {
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
    setExit(await (await import("../bot.js")).botStart(name, flags, await api(flags))),
  );
  serverFlags(bot.command("stop <name>").description("stop a bot: SIGTERM, SIGKILL after 10 s")).action(
    async (name: string, flags) => setExit(await (await import("../bot.js")).botStop(name, await api(flags))),
  );
  serverFlags(
    bot
      .command("logs <name>")
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
    setExit(await (await import("../bot.js")).botLogs(name, flags, await api(flags))),
  );
  serverFlags(
    bot
      .command("stats <name>")
      .description("CPU, memory, network, pids and restarts over time (kept 7 days)")
      .option("--since <when>", "1h (default), 30m, 24h, 7d or an ISO time")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-history.js")).botStats(name, flags, await api(flags))),
  );
  serverFlags(
    bot
      .command("alerts <name>")
      .description("a bot's alerts and when they held")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-history.js")).botAlerts(name, flags, await api(flags))),
  );
  serverFlags(
    bot
      .command("webhook <name>")
      .description("the URL (with its secret) that forwards POSTs to the bot's --webhook port")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-history.js")).botWebhook(name, flags, await api(flags))),
  );
  serverFlags(bot.command("list").description("your bots").option("--json", "JSON output")).action(
    async (flags) => setExit(await (await import("../bot.js")).botList(flags, await api(flags))),
  );
  serverFlags(
    bot
      .command("status <name>")
      .description("state, uptime, restarts, exit code, OOM, memory and CPU now, error and hint")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot.js")).botStatus(name, flags, await api(flags))),
  );
  serverFlags(bot.command("rm <name>").description("remove a bot (stopping it first)")).action(
    async (name: string, flags) =>
      setExit(await (await import("../bot.js")).botRemove(name, await api(flags))),
  );
  serverFlags(
    botHealthOptions(
      updateWaitOptions(
        bot
          .command("update <name>")
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
    setExit(await (await import("../bot-update.js")).botUpdate(name, flags, await api(flags))),
  );
  serverFlags(
    updateWaitOptions(
      bot
        .command("rollback <name>")
        .description("return to the version before the current one, through the same safe update")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-update.js")).botRollback(name, flags, await api(flags))),
  );
  serverFlags(
    bot
      .command("versions <name>")
      .description("a bot's versions, newest first")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-update.js")).botVersions(name, flags, await api(flags))),
  );
  const botEnv = bot
    .command("env")
    .description("a bot's environment: list, set, unset (a change restarts it safely)");
  serverFlags(
    botEnv
      .command("list <name>")
      .description("its variables, secrets masked")
      .option("--json", "JSON output"),
  ).action(async (name: string, flags) =>
    setExit(await (await import("../bot-update.js")).botEnvList(name, flags, await api(flags))),
  );
  serverFlags(
    updateWaitOptions(
      botEnv
        .command("set <name>")
        .argument("[pairs...]", "NAME=value, or NAME alone for this shell's value")
        .description("set variables; the bot restarts through a safe update")
        .option("--secret <NAME>", "one secret variable whose value is read from stdin (shown masked)")
        .option("--env-file <file>", "variables from a file of NAME=value lines")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, pairs: string[], flags) =>
    setExit(await (await import("../bot-update.js")).botEnvSet(name, pairs, flags, await api(flags))),
  );
  serverFlags(
    updateWaitOptions(
      botEnv
        .command("unset <name> <variables...>")
        .description("remove variables; the bot restarts through a safe update")
        .option("--json", "JSON output"),
    ),
  ).action(async (name: string, names: string[], flags) =>
    setExit(await (await import("../bot-update.js")).botEnvUnset(name, names, flags, await api(flags))),
  );
}
