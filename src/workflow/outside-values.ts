/**
 * The rule for values from outside the workflow's text (an agent's answer, a called workflow's outputs, an
 * approver's inputs; a hook's are `HOOK_` inputs): they reach later steps only under names the workflow
 * declared, never a setting's (core/setting-names.ts). Checked at parse and again at export, as a run
 * parsed before a name was listed may still be running.
 */
import { type ErrorCode, errorInfo, RunyardError } from "../core/errors.js";
import type { ErrorInfo } from "../core/events.js";
import { settingNameProblem } from "../core/setting-names.js";
import type { YamlReader } from "./yaml-reader.js";

/** Reports `name`, declared at `key` for a value from outside, if a setting's; `what` says where it is. */
export function refuseDeclaredSettingName(
  reader: YamlReader,
  key: unknown,
  name: string,
  what: string,
  source: string,
): boolean {
  const problem = settingNameProblem(name);
  if (!problem) return true;
  reader.report(
    key,
    `${what} ${name} would let ${source} set ${name}: ${problem}`,
    `give it another name (e.g. ${suggestedName(name)}); a step that needs the setting sets it from that name in its own script (export ${name}="$${suggestedName(name)}")`,
  );
  return false;
}

/** The step's error naming each of `names`, filled from outside, that is a setting's; else undefined. */
export function settingExportsError(
  code: ErrorCode,
  step: string,
  names: readonly string[],
  source: string,
): ErrorInfo | undefined {
  const refused = names.filter((name) => settingNameProblem(name) !== undefined);
  if (refused.length === 0) return undefined;
  return errorInfo(
    code,
    `step "${step}": ${source} may not set ${refused.join(", ")}: ${settingNameProblem(refused[0]!)}; nothing of it was exported`,
    `Give ${refused.length > 1 ? "them other names" : "it another name"} in the workflow (e.g. ${suggestedName(refused[0]!)}); a step that needs the setting sets it from that name in its own script (export ${refused[0]}="$${suggestedName(refused[0]!)}").`,
  );
}

/**
 * Refuses `given`, a caller's vars for a saved workflow, naming a setting not in its `vars:` or `inputs:`:
 * the run reads as its author's, but a `BASH_ENV` would run the caller's code in its steps. A declared one
 * (`AWS_REGION`) its author chose to take from outside.
 */
export function undeclaredSettingVars(
  given: Record<string, string>,
  declared: ReadonlySet<string>,
  file: string,
): RunyardError | undefined {
  const name = Object.keys(given).find((n) => !declared.has(n) && settingNameProblem(n) !== undefined);
  if (name === undefined) return undefined;
  return new RunyardError(
    "INVALID_INPUT",
    `vars: ${settingNameProblem(name)}; a run of a saved workflow takes it only when the workflow declares it`,
    {
      hint: `${file} does not declare ${name} in its vars: or inputs:. Pass the value under a name the workflow reads, or ask its author to declare ${name} in its vars:.`,
    },
  );
}

/** A name of the same meaning that is no setting's: MY_PATH, MY_HTTPS_PROXY_VALUE. */
function suggestedName(name: string): string {
  const mine = `MY_${name.replace(/^_+/, "")}`;
  return settingNameProblem(mine) ? `${mine}_VALUE` : mine;
}
