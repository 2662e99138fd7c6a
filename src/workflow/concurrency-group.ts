import { RunyardError } from "../core/errors.js";
import { quoted } from "../core/quoted-input.js";
import type { ConcurrencySpec } from "./model.js";
import { maxConcurrencyGroupLength } from "./parse-concurrency.js";
import { bracedVariable, fillVariables } from "./templates.js";

/**
 * The group a run of the workflow takes turns in: the `concurrency.group` text with each
 * `${NAME}` replaced by the run's value (the workflow's vars under those given). The text is a
 * name in the store, never shell code. A variable the run does not set is an error at submit:
 * an empty part would put unrelated runs in one group.
 */
export function expandConcurrencyGroup(
  spec: ConcurrencySpec,
  vars: Readonly<Record<string, string>>,
  file: string,
): string {
  const missing = [...spec.group.matchAll(bracedVariable)]
    .map((match) => match[1] ?? "")
    .filter((name) => vars[name] === undefined);
  const where = `${file}:${spec.pos.line}:${spec.pos.col}`;
  if (missing.length > 0) {
    const names = [...new Set(missing)];
    throw new RunyardError(
      "INVALID_INPUT",
      `${where}: concurrency group ${quoted(spec.group)} uses ${names.map((name) => `\${${name}}`).join(", ")}, which the run does not set`,
      { hint: `Give it at submit (--var ${names[0]}=...), or add it to the workflow's vars:.` },
    );
  }
  const group = fillVariables(spec.group, vars, "");
  if (group.trim() === "" || group.length > maxConcurrencyGroupLength) {
    throw new RunyardError(
      "INVALID_INPUT",
      `${where}: concurrency group ${quoted(spec.group)} expands to ${group.trim() === "" ? "nothing" : `${group.length} characters (at most ${maxConcurrencyGroupLength})`}`,
      { hint: "Give the variables it uses short, non-empty values." },
    );
  }
  return group;
}
