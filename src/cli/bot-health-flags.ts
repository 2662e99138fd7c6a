import { readFile } from "node:fs/promises";
import { RunyardError } from "../core/errors.js";

/** The health check flags of `runyard bot start` and `runyard bot update`. */
export interface BotHealthFlags {
  healthCmd?: string;
  healthHttp?: string;
  healthInterval?: string;
  healthTimeout?: string;
  healthRetries?: string;
  healthStartPeriod?: string;
}

/** A USAGE error of a bot command's flags, with the hint saying what to write instead. */
export function usage(message: string, hint: string): RunyardError {
  return new RunyardError("USAGE", message, { hint });
}

/** `30s`, `500ms`, `2m`, `1h`, or a number of seconds, in milliseconds; never negative. */
export function durationMs(flag: string, value: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match) {
    throw usage(
      `${flag} ${value}: expected a duration like 30s, 500ms, 2m or 1h`,
      `For example ${flag} 10s (a negative or empty duration is not one).`,
    );
  }
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(match[1]) * unit);
}

/** `PORT/PATH` (or `PORT` alone for /) as the API's `{port, path}`. */
export function healthHttp(value: string): { port: number; path: string } {
  const match = /^(\d{1,5})(\/\S*)?$/.exec(value.trim());
  const port = match ? Number(match[1]) : Number.NaN;
  if (!match || port < 1 || port > 65_535) {
    throw usage(
      `--health-http ${value}: expected PORT/PATH, e.g. 8080/healthz`,
      "The port the bot listens on inside its container (1-65535), then the path to GET.",
    );
  }
  return { port, path: match[2] ?? "/" };
}

/** The API's `health` from the flags; undefined when no health flag is given. */
export function healthOf(flags: BotHealthFlags): Record<string, unknown> | undefined {
  const tuning = [
    flags.healthInterval !== undefined ? "--health-interval" : undefined,
    flags.healthTimeout !== undefined ? "--health-timeout" : undefined,
    flags.healthRetries !== undefined ? "--health-retries" : undefined,
    flags.healthStartPeriod !== undefined ? "--health-start-period" : undefined,
  ].filter(Boolean);
  if (flags.healthCmd === undefined && flags.healthHttp === undefined) {
    if (tuning.length > 0) {
      throw usage(
        `${tuning.join(", ")} go${tuning.length > 1 ? "" : "es"} with --health-cmd or --health-http`,
        'For example --health-cmd "test -f /tmp/ready" --health-interval 10s.',
      );
    }
    return undefined;
  }
  if (flags.healthCmd !== undefined && flags.healthHttp !== undefined) {
    throw usage("give --health-cmd or --health-http, not both", "One health check per bot.");
  }
  if (flags.healthCmd !== undefined && flags.healthCmd.trim() === "") {
    throw usage(
      "--health-cmd is empty",
      'Give a shell command that exits 0 when healthy, e.g. "test -f /tmp/ready".',
    );
  }
  let retries: number | undefined;
  if (flags.healthRetries !== undefined) {
    retries = Number(flags.healthRetries);
    if (!Number.isInteger(retries) || retries < 1) {
      throw usage(
        `--health-retries ${flags.healthRetries}: expected a whole number of at least 1`,
        "For example --health-retries 3.",
      );
    }
  }
  return {
    ...(flags.healthCmd !== undefined ? { cmd: flags.healthCmd } : {}),
    ...(flags.healthHttp !== undefined ? { http: healthHttp(flags.healthHttp) } : {}),
    ...(flags.healthInterval !== undefined
      ? { interval_ms: durationMs("--health-interval", flags.healthInterval) }
      : {}),
    ...(flags.healthTimeout !== undefined
      ? { timeout_ms: durationMs("--health-timeout", flags.healthTimeout) }
      : {}),
    ...(retries !== undefined ? { retries } : {}),
    ...(flags.healthStartPeriod !== undefined
      ? { start_period_ms: durationMs("--health-start-period", flags.healthStartPeriod) }
      : {}),
  };
}

const envNamePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An env file: `NAME=value` lines (an `export ` before is allowed), `#` comments and blank lines;
 * a value in single or double quotes has them taken off. A bad line is an error naming file:line.
 */
export function parseEnvFile(text: string, file: string): Record<string, string> {
  const env: Record<string, string> = {};
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const body = line.replace(/^export\s+/, "");
    const at = body.indexOf("=");
    const name = at < 0 ? body : body.slice(0, at).trim();
    if (at < 0 || !envNamePattern.test(name)) {
      throw usage(
        `${file}:${index + 1}:1: ${at < 0 ? `no = in ${JSON.stringify(line.slice(0, 60))}` : `${JSON.stringify(name)} is not an environment variable name`}`,
        "Each line is NAME=value (letters, digits and _, not starting with a digit); # starts a comment.",
      );
    }
    let value = body.slice(at + 1).trim();
    const quote = value[0];
    if ((quote === '"' || quote === "'") && value.length >= 2 && value.endsWith(quote))
      value = value.slice(1, -1);
    if (value.includes("\0"))
      throw usage(`${file}:${index + 1}: the value of ${name} holds a NUL byte`, "Remove it.");
    env[name] = value;
  }
  return env;
}

export async function readEnvFile(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw usage(
      `--env-file ${file}: ${(error as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (error as Error).message}`,
      "Give the path of a file of NAME=value lines.",
    );
  }
  return parseEnvFile(text, file);
}
