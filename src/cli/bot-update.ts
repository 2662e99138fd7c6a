import type { components, operations } from "../client/api-types.js";
import { printable } from "../core/terminal-text.js";
import { apiClient } from "./api-client.js";
import { durationMs, healthOf, readEnvFile, usage } from "./bot-health-flags.js";
import { botPath } from "./bot-history.js";
import { type BotStartFlags, botStartBody, envOf } from "./bot-start-body.js";
import { type CliContext, pipedSecret } from "./context.js";
import { printJson, table } from "./table.js";

type BotVersion = components["schemas"]["BotVersion"];
type UpdateAnswer = operations["updateBot"]["responses"][200]["content"]["application/json"];
type EnvAnswer = operations["getBotEnv"]["responses"][200]["content"]["application/json"];

/** `--min-ready 10s` and `--timeout 4m` as the API's seconds. */
export interface UpdateWaitFlags {
  minReady?: string;
  timeout?: string;
}

export function waitBody(flags: UpdateWaitFlags): { min_ready_secs?: number; timeout_secs?: number } {
  const body: { min_ready_secs?: number; timeout_secs?: number } = {};
  if (flags.minReady !== undefined)
    body.min_ready_secs = Math.round(durationMs("--min-ready", flags.minReady) / 1000);
  if (flags.timeout !== undefined) {
    const secs = Math.round(durationMs("--timeout", flags.timeout) / 1000);
    if (secs < 10 || secs > 280) {
      throw usage(
        `--timeout ${flags.timeout}: expected 10s to 280s`,
        "For example --timeout 4m (the build is included).",
      );
    }
    body.timeout_secs = secs;
  }
  return body;
}

export type BotUpdateFlags = Partial<BotStartFlags> & UpdateWaitFlags & { json?: boolean };

/**
 * `POST /api/bots/{name}/update`'s body: a new source (as `bot start` takes it) if one is given,
 * and only the settings given; what is left out stays as the running version has it.
 */
export async function botUpdateBody(
  name: string,
  flags: BotUpdateFlags,
  ctx: Pick<CliContext, "env" | "stdin">,
): Promise<Record<string, unknown>> {
  const sourceGiven = flags.simple !== undefined || flags.custom !== undefined || flags.image !== undefined;
  const body: Record<string, unknown> = {};
  if (sourceGiven) {
    const start = await botStartBody(
      name,
      { requirement: [], env: [], secret: [], label: [], ...flags } as BotStartFlags,
      ctx,
    );
    for (const key of ["files", "entrypoint", "requirements", "archive", "git", "image", "registry"]) {
      if (start[key] !== undefined) body[key] = start[key];
    }
  } else if (
    flags.entrypoint !== undefined ||
    (flags.requirement ?? []).length > 0 ||
    flags.ref !== undefined
  ) {
    throw usage(
      "--entrypoint, -r and --ref go with a new source",
      "Give --simple FILES, --custom SRC or --image REF with them; without a source the bot keeps its code.",
    );
  }
  const envGiven = (flags.env ?? []).length > 0 || flags.envFile !== undefined;
  if (envGiven) {
    body.env = {
      ...(flags.envFile ? await readEnvFile(flags.envFile) : {}),
      ...envOf(flags.env ?? [], ctx.env),
    };
  }
  if ((flags.secret ?? []).length > 0) body.secrets = flags.secret;
  const health = healthOf(flags);
  if (health) body.health = health;
  if (flags.restart !== undefined) {
    if (!["no", "on-failure", "always"].includes(flags.restart)) {
      throw usage(
        `--restart ${flags.restart}: expected no, on-failure or always`,
        "For example --restart on-failure.",
      );
    }
    body.restart = flags.restart;
  }
  if (flags.maxRestarts !== undefined) {
    const n = Number(flags.maxRestarts);
    if (!Number.isInteger(n) || n < 0)
      throw usage(
        `--max-restarts ${flags.maxRestarts}: expected a whole number`,
        "For example --max-restarts 5.",
      );
    body.max_restarts = n;
  }
  return { ...body, ...waitBody(flags) };
}

function reportUpdate(
  name: string,
  answer: UpdateAnswer,
  what: string,
  ctx: CliContext,
  json?: boolean,
): number {
  if (json) return printJson(ctx.stdout, answer);
  const health = answer.bot.health ? `, health ${answer.bot.health.status}` : "";
  ctx.stdout.write(
    `bot ${printable(name)} ${what}: version ${answer.version.version} is ${answer.bot.state}${health}` +
      `${answer.bot.image ? ` (image ${answer.bot.image})` : ""}; the previous version was stopped\n`,
  );
  return 0;
}

/** `runyard bot update NAME [--simple ...|--custom ...|--image ...] [settings]`. */
export async function botUpdate(name: string, flags: BotUpdateFlags, ctx: CliContext): Promise<number> {
  const body = await botUpdateBody(name, flags, ctx);
  if (!flags.json)
    ctx.stderr.write(`updating bot ${name}: the new version starts beside the running one...\n`);
  const answer = await apiClient(ctx).request<UpdateAnswer>("POST", botPath(name, "/update"), body);
  return reportUpdate(name, answer, "updated", ctx, flags.json);
}

/** `runyard bot rollback NAME`: the version before the current one, through the same safe update. */
export async function botRollback(
  name: string,
  flags: UpdateWaitFlags & { json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const answer = await apiClient(ctx).request<UpdateAnswer>(
    "POST",
    botPath(name, "/rollback"),
    waitBody(flags),
  );
  const of = answer.version.summary.rollback_of;
  return reportUpdate(
    name,
    answer,
    `rolled back${of !== undefined ? ` to version ${String(of)}'s code` : ""}`,
    ctx,
    flags.json,
  );
}

/** `runyard bot versions NAME`. */
export async function botVersions(name: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const answer = await apiClient(ctx).request<{ current: number; versions: BotVersion[] }>(
    "GET",
    botPath(name, "/versions"),
  );
  if (flags.json) return printJson(ctx.stdout, answer);
  const rows = [["VERSION", "STATE", "REASON", "CREATED", "SOURCE", "ERROR"]];
  for (const version of answer.versions) {
    const source = (version.summary.source ?? {}) as Record<string, unknown>;
    const what =
      source.image !== undefined
        ? String(source.image)
        : source.git
          ? String((source.git as { url?: string }).url ?? "git")
          : Array.isArray(source.files)
            ? (source.files as string[]).join(" ")
            : String(source.mode ?? "-");
    const rollback =
      version.summary.rollback_of !== undefined ? ` (of v${String(version.summary.rollback_of)})` : "";
    rows.push([
      `${version.version}${version.version === answer.current ? " *" : ""}`,
      version.state,
      `${version.reason}${rollback}`,
      version.created_at,
      what,
      version.error ? `${version.error.code}: ${version.error.message.split("\n")[0]}` : "",
    ]);
  }
  ctx.stdout.write(`${printable(table(rows))}\n`);
  return 0;
}

/** `runyard bot env list NAME`: secrets masked. */
export async function botEnvList(name: string, flags: { json?: boolean }, ctx: CliContext): Promise<number> {
  const answer = await apiClient(ctx).request<EnvAnswer>("GET", botPath(name, "/env"));
  if (flags.json) return printJson(ctx.stdout, answer.env);
  if (answer.env.length === 0) {
    ctx.stdout.write(
      `bot ${name} has no environment variables; add one with \`runyard bot env set ${name} NAME=value\`\n`,
    );
    return 0;
  }
  for (const entry of answer.env) {
    const note = entry.stored ? "  (stored secret)" : entry.secret ? "  (secret)" : "";
    ctx.stdout.write(`${entry.name}=${printable(entry.value)}${note}\n`);
  }
  return 0;
}

/**
 * `runyard bot env set NAME K=V... [--env-file F] [--secret K]`: a `--secret` name's value is read
 * from stdin (never from the command line); the bot restarts through a safe update.
 */
export async function botEnvSet(
  name: string,
  pairs: string[],
  flags: UpdateWaitFlags & { secret?: string; envFile?: string; json?: boolean },
  ctx: CliContext,
): Promise<number> {
  const set: Record<string, string> = {
    ...(flags.envFile ? await readEnvFile(flags.envFile) : {}),
    ...envOf(pairs, ctx.env),
  };
  const secret: string[] = [];
  if (flags.secret !== undefined) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(flags.secret)) {
      throw usage(
        `--secret ${flags.secret}: not an environment variable name`,
        "For example --secret BOT_TOKEN.",
      );
    }
    if (flags.secret in set) {
      throw usage(
        `${flags.secret} is given as NAME=value and as --secret`,
        "Give a secret's value on stdin only.",
      );
    }
    set[flags.secret] = await secretFromStdin(flags.secret, ctx);
    secret.push(flags.secret);
  }
  if (Object.keys(set).length === 0) {
    throw usage(
      "nothing to set",
      `For example \`runyard bot env set ${name} LOG_LEVEL=debug\`, or --secret BOT_TOKEN with its value on stdin.`,
    );
  }
  const answer = await apiClient(ctx).request<UpdateAnswer>("PATCH", botPath(name, "/env"), {
    set,
    secret,
    unset: [],
    ...waitBody(flags),
  });
  return reportUpdate(name, answer, `env set (${Object.keys(set).join(", ")})`, ctx, flags.json);
}

/** `runyard bot env unset NAME K...`. */
export async function botEnvUnset(
  name: string,
  names: string[],
  flags: UpdateWaitFlags & { json?: boolean },
  ctx: CliContext,
): Promise<number> {
  if (names.length === 0)
    throw usage("name the variables to remove", `For example \`runyard bot env unset ${name} LOG_LEVEL\`.`);
  for (const variable of names) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(variable)) {
      throw usage(
        `${JSON.stringify(variable)} is not an environment variable name`,
        "Names are letters, digits and _, not starting with a digit.",
      );
    }
  }
  const answer = await apiClient(ctx).request<UpdateAnswer>("PATCH", botPath(name, "/env"), {
    set: {},
    secret: [],
    unset: names,
    ...waitBody(flags),
  });
  return reportUpdate(name, answer, `env unset (${names.join(", ")})`, ctx, flags.json);
}

function secretFromStdin(name: string, ctx: Pick<CliContext, "stdin">): Promise<string> {
  return pipedSecret(ctx.stdin, {
    terminal: `--secret ${name} reads its value from stdin, which is a terminal`,
    empty: `no value for ${name} on stdin`,
    hint: `Pipe the value in: \`printf %s "$VALUE" | runyard bot env set BOT --secret ${name}\`.`,
  });
}
