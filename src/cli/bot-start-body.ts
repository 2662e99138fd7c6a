import { readFile, stat } from "node:fs/promises";
import { basename } from "node:path";
import { packBotFolder } from "./bot-context.js";
import { type BotHealthFlags, healthOf, readEnvFile, usage } from "./bot-health-flags.js";
import { alertFlag } from "./bot-history.js";
import { type CliContext, pipedSecret } from "./context.js";

/** The flags of `runyard bot start NAME` (the avtomatika-bot CLI's, and runyard's own). */
export interface BotStartFlags extends BotHealthFlags {
  /** A file of NAME=value lines; -e wins over it. */
  envFile?: string;
  simple?: string[];
  entrypoint?: string;
  requirement: string[];
  custom?: string;
  ref?: string;
  image?: string;
  registryUser?: string;
  registryPasswordStdin?: boolean;
  registryServer?: string;
  env: string[];
  secret: string[];
  restart?: string;
  maxRestarts?: string;
  lifetime?: string;
  group?: string;
  label: string[];
  webhook?: string;
  alert?: string[];
  notify?: string[];
  logMaxMb?: string;
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

const sourceHint =
  "Give one source: --simple bot.py [more.py ...] (your code; runyard writes the Dockerfile), --custom ./dir | bot.tar.gz | https://host/repo.git (your Dockerfile), or --image ghcr.io/user/bot:v1.";

/** A git source, not a local path: a URL (https, http, ssh, git, file), scp-like `git@host:path`, or `*.git`. */
export function isGitSource(source: string): boolean {
  return (
    /^(https?|ssh|git|file):\/\//i.test(source) ||
    /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:/.test(source) ||
    source.endsWith(".git")
  );
}

/**
 * `-e NAME=value`, or `-e NAME` alone for the value of NAME in this shell (as `docker run -e`
 * does), which keeps a bot token out of the shell history.
 */
export function envOf(pairs: readonly string[], env: CliContext["env"]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf("=");
    const name = at < 0 ? pair : pair.slice(0, at);
    if (!envNamePattern.test(name)) {
      throw usage(
        `-e ${pair}: ${JSON.stringify(name)} is not an environment variable name`,
        "Write -e NAME=value (letters, digits and _, not starting with a digit), e.g. -e BOT_TOKEN=123:ABC, or -e BOT_TOKEN to pass this shell's value.",
      );
    }
    const value = at < 0 ? env[name] : pair.slice(at + 1);
    if (value === undefined) {
      throw usage(
        `-e ${name}: ${name} is not set in this shell`,
        `Export it first (export ${name}=...), or give the value: -e ${name}=value.`,
      );
    }
    out[name] = value;
  }
  return out;
}

function count(flag: string, value: string | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) {
    throw usage(`${flag} ${value}: expected a whole number of at least ${min}`, `For example ${flag} 5.`);
  }
  return n;
}

/** Requirement specs; `-r requirements.txt` (an existing .txt file) reads its lines, as pip's `-r` does. */
async function requirementsOf(values: readonly string[]): Promise<string[]> {
  const specs: string[] = [];
  for (const value of values) {
    if (value.endsWith(".txt") && (await stat(value).catch(() => undefined))?.isFile()) {
      const lines = (await readFile(value, "utf8")).split("\n").map((line) => line.replace(/#.*/, "").trim());
      specs.push(...lines.filter(Boolean));
    } else specs.push(value);
  }
  return specs;
}

/** The files of --simple, by base name (the avtomatika-bot CLI sends `bot.py handlers.py utils.py` so). */
async function simpleFiles(paths: readonly string[]): Promise<Record<string, string>> {
  const files: Record<string, string> = {};
  const from: Record<string, string> = {};
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (!info) {
      throw usage(
        `--simple ${path}: no such file`,
        "Check the path; it is read relative to the current folder.",
      );
    }
    if (info.isDirectory()) {
      throw usage(
        `--simple ${path} is a folder`,
        `Name its files (--simple ${path}/bot.py ${path}/handlers.py --entrypoint bot.py), or deploy the folder with its own Dockerfile: --custom ${path}.`,
      );
    }
    const name = basename(path);
    if (from[name] !== undefined) {
      throw usage(
        `--simple ${from[name]} and ${path} have the same name, ${name}`,
        "Files are sent by their base names into one folder; rename one, or deploy the project with --custom DIR and a Dockerfile.",
      );
    }
    try {
      files[name] = decoder.decode(await readFile(path));
    } catch {
      throw usage(
        `--simple ${path} is not UTF-8 text`,
        "Simple mode sends source files as text; ship binary files with --custom DIR and a Dockerfile.",
      );
    }
    from[name] = path;
  }
  return files;
}

/** What `--custom SOURCE` sends: a git URL, an archive file as is, or a folder packed. */
async function customSource(source: string, ref: string | undefined): Promise<Record<string, unknown>> {
  const info = await stat(source).catch(() => undefined);
  if (!info && isGitSource(source)) return { git: { url: source, ...(ref ? { ref } : {}) } };
  if (ref !== undefined) {
    throw usage(
      `--ref ${ref} goes with a git URL, and ${source} is not one`,
      "Drop --ref, or give a git URL.",
    );
  }
  if (!info) {
    throw usage(
      `--custom ${source}: no such folder or file`,
      "Give a folder with a Dockerfile, a .tar / .tar.gz / .zip of one, or a git URL (https://..., git@host:path, file://...).",
    );
  }
  const archive = info.isDirectory() ? await packBotFolder(source) : await readFile(source);
  return { archive: archive.toString("base64") };
}

/** The registry password, read from stdin (never from argv, where `ps` and the history see it). */
function passwordFrom(stdin: CliContext["stdin"]): Promise<string> {
  return pipedSecret(stdin, {
    terminal: "--registry-password-stdin reads the password from stdin, and stdin is a terminal",
    empty: "no registry password on stdin",
    hint: 'Pipe it in: `printf %s "$REGISTRY_TOKEN" | runyard bot start NAME --image REF --registry-user U --registry-password-stdin`.',
  });
}

/** `POST /api/bots`'s body from the command line; every bad flag is a USAGE error with a hint. */
export async function botStartBody(
  name: string,
  flags: BotStartFlags,
  ctx: Pick<CliContext, "env" | "stdin">,
): Promise<Record<string, unknown>> {
  const given = [
    flags.simple ? "--simple" : undefined,
    flags.custom !== undefined ? "--custom" : undefined,
    flags.image !== undefined ? "--image" : undefined,
  ].filter(Boolean);
  if (given.length === 0) throw usage(`bot ${name} has no source`, sourceHint);
  if (given.length > 1) throw usage(`give one source, not ${given.join(" and ")}`, sourceHint);
  const simpleOnly = [
    flags.entrypoint !== undefined ? "--entrypoint" : undefined,
    flags.requirement.length > 0 ? "-r" : undefined,
  ].filter(Boolean);
  if (!flags.simple && simpleOnly.length > 0) {
    throw usage(
      `${simpleOnly.join(" and ")} go${simpleOnly.length > 1 ? "" : "es"} with --simple`,
      "With --custom the Dockerfile installs dependencies and names the command; with --image the image has them.",
    );
  }
  if (flags.custom === undefined && flags.ref !== undefined) {
    throw usage(
      "--ref goes with --custom GIT_URL",
      "For example --custom https://github.com/you/bot.git --ref v1.",
    );
  }
  const registryFlags = [
    flags.registryUser !== undefined ? "--registry-user" : undefined,
    flags.registryPasswordStdin ? "--registry-password-stdin" : undefined,
    flags.registryServer !== undefined ? "--registry-server" : undefined,
  ].filter(Boolean);
  if (flags.image === undefined && registryFlags.length > 0) {
    throw usage(
      `${registryFlags.join(", ")}: registry flags go with --image`,
      "Registry credentials are for pulling an image.",
    );
  }
  if ((flags.registryUser === undefined) !== !flags.registryPasswordStdin) {
    throw usage(
      flags.registryUser === undefined
        ? "--registry-password-stdin needs --registry-user"
        : "--registry-user needs --registry-password-stdin",
      'Give both: `printf %s "$TOKEN" | runyard bot start NAME --image REF --registry-user U --registry-password-stdin`.',
    );
  }
  if (flags.registryServer !== undefined && flags.registryUser === undefined) {
    throw usage(
      "--registry-server goes with --registry-user",
      "Give the user and password of that registry too.",
    );
  }
  if (flags.restart !== undefined && !["no", "on-failure", "always"].includes(flags.restart)) {
    throw usage(
      `--restart ${flags.restart}: expected no, on-failure or always`,
      "For example --restart on-failure --max-restarts 5.",
    );
  }
  for (const secret of flags.secret) {
    if (!envNamePattern.test(secret)) {
      throw usage(
        `--secret ${secret}: not a secret name`,
        "Name a stored secret (`runyard secret list` shows them), e.g. --secret BOT_TOKEN.",
      );
    }
  }
  const maxRestarts = count("--max-restarts", flags.maxRestarts, 0);
  const lifetime = count("--lifetime", flags.lifetime, 1);
  const env = { ...(flags.envFile ? await readEnvFile(flags.envFile) : {}), ...envOf(flags.env, ctx.env) };
  const health = healthOf(flags);

  let source: Record<string, unknown>;
  if (flags.simple) {
    const files = await simpleFiles(flags.simple);
    const entrypoint = flags.entrypoint === undefined ? undefined : basename(flags.entrypoint);
    if (entrypoint !== undefined && files[entrypoint] === undefined) {
      throw usage(
        `--entrypoint ${flags.entrypoint} is not one of the --simple files`,
        `Name one of them: ${Object.keys(files).join(", ")}.`,
      );
    }
    source = {
      files,
      ...(entrypoint ? { entrypoint } : {}),
      requirements: await requirementsOf(flags.requirement),
    };
  } else if (flags.custom !== undefined) {
    source = await customSource(flags.custom, flags.ref);
  } else {
    source = {
      image: flags.image,
      ...(flags.registryUser !== undefined
        ? {
            registry: {
              username: flags.registryUser,
              password: await passwordFrom(ctx.stdin),
              ...(flags.registryServer ? { server: flags.registryServer } : {}),
            },
          }
        : {}),
    };
  }
  return {
    name,
    ...source,
    env,
    secrets: flags.secret,
    ...(health ? { health } : {}),
    ...(flags.restart ? { restart: flags.restart } : {}),
    ...(maxRestarts !== undefined ? { max_restarts: maxRestarts } : {}),
    ...(lifetime !== undefined ? { lifetime_secs: lifetime } : {}),
    ...(flags.group ? { group: flags.group } : {}),
    labels: flags.label,
    ...botExtraFlags(flags),
  };
}

/** --webhook, --alert, --notify and --log-max-mb as the start body's fields. */
function botExtraFlags(flags: BotStartFlags): Record<string, unknown> {
  const whole = (value: string, flag: string, hint: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n <= 0) throw usage(`${flag} ${value}: expected a whole number`, hint);
    return n;
  };
  const alerts = (flags.alert ?? []).map(alertFlag);
  if (alerts.length > 0 && (flags.notify ?? []).length === 0) {
    throw usage(
      "--alert needs somewhere to say it: add --notify URL",
      "For example --notify https://hooks.example.com/bot.",
    );
  }
  return {
    ...(flags.webhook !== undefined
      ? {
          webhook_port: whole(
            flags.webhook,
            "--webhook",
            "Give the port the bot listens on in its container, e.g. --webhook 8080.",
          ),
        }
      : {}),
    ...(alerts.length > 0 ? { alerts } : {}),
    ...((flags.notify ?? []).length > 0 ? { notify: flags.notify } : {}),
    ...(flags.logMaxMb !== undefined
      ? { log_max_mb: whole(flags.logMaxMb, "--log-max-mb", "For example --log-max-mb 32 (MiB).") }
      : {}),
  };
}
