import { closest, distance } from "fastest-levenshtein";
import type { Workflow } from "./model.js";

/** A `${NAME}` no source defines: the shell would expand it to an empty string. */
export interface UndefinedVariable {
  name: string;
  step: string;
  line: number;
  col: number;
  /** The defined name it most resembles, when one is close. */
  didYouMean?: string;
}

/** What every step gets besides the workflow's own variables. */
const builtIn = ["RUNYARD_RUN_ID", "RUNYARD_STEP", "RUNYARD_HOST", "RUNYARD_OUTPUT"];

/** `${NAME}` with no default or test (`${NAME:-x}` says the author expects it may be unset). */
const braced = /\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g;
/** Names a script gives itself: `NAME=`, `for NAME in`, `read [-flags] NAME...`, `export NAME`. */
const assigned =
  /(?:^|[\s;&|(])(?:export\s+|local\s+|declare\s+(?:-\w+\s+)*)?([A-Za-z_][A-Za-z0-9_]*)(?:=|\+=)/gm;
const loops = /\bfor\s+([A-Za-z_][A-Za-z0-9_]*)\s+in\b/g;
const reads = /\bread\s+(?:-\w+\s+)*([A-Za-z_][A-Za-z0-9_ ]*)/g;
/** Exports a step makes: `BOPS_EXPORT:NAME=` lines, and `NAME=` / `NAME<<` written to $RUNYARD_OUTPUT. */
const exportLines = /BOPS_EXPORT:([A-Za-z_][A-Za-z0-9_]*)=/g;
const outputFileLines = /([A-Za-z_][A-Za-z0-9_]*)(?:=|<<)[^\n]*RUNYARD_OUTPUT/g;

/** The names a step's script exports (`BOPS_EXPORT:NAME=`, `NAME=... >> $RUNYARD_OUTPUT`). */
export function scriptExports(script: string): string[] {
  return [...names(exportLines, script), ...names(outputFileLines, script)];
}

function names(pattern: RegExp, text: string): string[] {
  return [...text.matchAll(pattern)].flatMap((match) => (match[1] ?? "").split(/\s+/).filter(Boolean));
}

/**
 * The `${NAME}`s in steps' scripts and `when`s that nothing defines: not `vars:`, `--var`,
 * `env:`, `secrets:`, an export of any step, the script itself, runyard's own variables nor
 * `environment` (the variables the steps will inherit). A warning, not an error: a runner's
 * environment may hold what this one does not.
 */
export function undefinedVariables(
  workflow: Pick<Workflow, "vars" | "env" | "secrets" | "steps">,
  given: Record<string, string>,
  environment: Record<string, string | undefined>,
): UndefinedVariable[] {
  const defined = new Set([
    ...builtIn,
    ...Object.keys(workflow.vars),
    ...Object.keys(given),
    ...Object.keys(workflow.env),
    ...workflow.secrets,
    ...Object.keys(environment).filter((name) => environment[name] !== undefined),
  ]);
  for (const step of workflow.steps) {
    for (const name of [...Object.keys(step.env), ...step.expectVars]) defined.add(name);
    for (const input of step.approval?.inputs ?? []) defined.add(input.name);
    // An agent step's answer: each property of its output_schema becomes an export.
    const answer = step.agent?.outputSchema?.properties;
    if (answer && typeof answer === "object") for (const name of Object.keys(answer)) defined.add(name);
    for (const instance of step.matrix?.instances ?? []) {
      for (const name of Object.keys(instance.vars)) defined.add(name);
    }
    for (const name of [...names(exportLines, step.script), ...names(outputFileLines, step.script)]) {
      defined.add(name);
    }
  }
  const found: UndefinedVariable[] = [];
  for (const step of workflow.steps) {
    const local = new Set([
      ...names(assigned, step.script),
      ...names(loops, step.script),
      ...names(reads, step.script),
    ]);
    const texts = [step.script, step.when?.source ?? ""];
    const seen = new Set<string>();
    for (const text of texts) {
      for (const match of text.matchAll(braced)) {
        const name = match[1] ?? "";
        if (defined.has(name) || local.has(name) || seen.has(name)) continue;
        seen.add(name);
        const suggestion = defined.size > 0 ? closest(name, [...defined]) : undefined;
        const close = suggestion !== undefined && isClose(name, suggestion);
        found.push({
          name,
          step: step.name,
          line: step.pos.line,
          col: step.pos.col,
          ...(close ? { didYouMean: suggestion } : {}),
        });
      }
    }
  }
  return found;
}

/** Close enough to suggest: at most a third of the longer name's letters differ, case aside. */
function isClose(a: string, b: string): boolean {
  const longer = Math.max(a.length, b.length);
  return distance(a.toUpperCase(), b.toUpperCase()) <= Math.max(1, Math.floor(longer / 3));
}

export function formatUndefinedVariable(file: string, variable: UndefinedVariable): string {
  const hint = variable.didYouMean ? ` (did you mean \${${variable.didYouMean}}?)` : "";
  return `${file}:${variable.line}:${variable.col}: warning: step "${variable.step}" uses \${${variable.name}}, which no vars:, --var, env:, secret, export or variable of this environment defines: it expands to an empty string${hint}`;
}
