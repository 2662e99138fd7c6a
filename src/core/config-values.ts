import { normalize } from "node:path";
import { z } from "zod";
import { credentialEnvNames } from "./config-env.js";
import { parseMemorySize } from "./memory-size.js";
import { destinationEntryProblem } from "./outbound/destination-list.js";
import { cwdRootProblem } from "./work-folders.js";

/*
 * How a setting's text (env, a config file, a flag) becomes its value in the config schema
 * (config.ts): yes/no words, durations, log levels, and checked lists.
 */

/**
 * Python's level names (the agent runner's `INFO`, `WARNING`) as pino's; other text as written,
 * lowercased.
 */
export function logLevelOf(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const level = value.trim().toLowerCase();
  return level === "warning" ? "warn" : level === "critical" ? "fatal" : level;
}

/** A yes/no setting as env or a config file writes it (`1`, `true`, `yes`; `0`, `false`, `no`). */
export function switchOf(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const word = value.trim().toLowerCase();
  if (["1", "true", "yes", "on"].includes(word)) return true;
  if (["0", "false", "no", "off"].includes(word)) return false;
  return value;
}

/** A duration as a person writes it (`2m`, `90s`, `500ms`, `1h`; a bare number is seconds) in ms. */
export function durationMsOf(value: unknown): unknown {
  if (typeof value !== "string") return value;
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(value.toLowerCase());
  if (!match) return value;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? "s") as "ms" | "s" | "m" | "h"];
  return Math.round(Number(match[1]) * unit);
}

/** A duration as `durationMsOf` reads it, in whole seconds (`300`, `90s`, `5m`, `1h`). */
export function durationSeconds(value: unknown): unknown {
  const ms = durationMsOf(value);
  return typeof ms === "number" ? ms / 1000 : ms;
}

/**
 * Entries separated by `separator` in the environment, a YAML list in the config file, each
 * checked by `problem` (what is wrong with it, or undefined).
 */
export function commaList(problem: (entry: string) => string | undefined, separator = ",") {
  return z
    .union([z.string(), z.array(z.string())])
    .default([])
    .transform((value) =>
      (Array.isArray(value) ? value : value.split(separator)).map((entry) => entry.trim()).filter(Boolean),
    )
    .superRefine(eachChecked(problem));
}

/** A refinement that reports what `problem` finds wrong with each entry. */
function eachChecked(problem: (entry: string) => string | undefined) {
  return (entries: string[], ctx: z.RefinementCtx): void => {
    for (const entry of entries) {
      const message = problem(entry);
      if (message) ctx.addIssue({ code: "custom", message });
    }
  };
}

/** What is wrong with `name` as an entry of step_pass_env, if anything. */
export function passEnvNameProblem(name: string): string | undefined {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `"${name}" is not an environment variable name`;
  if (credentialEnvNames.includes(name))
    return `${name} carries runyard's own credentials, which no step is given`;
  return undefined;
}

/** Absolute folders: a YAML list in the config file, colon-separated in the environment. */
export function folderList() {
  return commaList(cwdRootProblem, ":").transform((roots) =>
    roots.map((root) => normalize(root).replace(/(?<=.)\/+$/, "")),
  );
}

export function destinationList() {
  return z.array(z.string()).default([]).superRefine(eachChecked(destinationEntryProblem));
}

/** A size in Docker's notation (8g, 512m) or a number of bytes, kept as its text; `example` is shown when it is not one. */
export function memorySize(example: string) {
  return z
    .union([z.string(), z.number()])
    .transform((value) => String(value))
    .refine((value) => parseMemorySize(value) !== undefined, {
      message: `must be a size like ${example} (bytes, or a number with k, m or g)`,
    });
}
