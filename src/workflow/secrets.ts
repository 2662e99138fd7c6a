import { isSecretName, SecretMasker } from "../core/masking.js";
import { everyStep, type Workflow } from "./model.js";

/** The names a workflow's `secrets:` list adds to the secret-named ones. */
export function secretNamesOf(workflow: Pick<Workflow, "secrets">): ReadonlySet<string> {
  return new Set(workflow.secrets);
}

/** Whether a variable holds a secret: named `*_TOKEN`, `*_KEY`, ... or listed in `secrets:`. */
export function isSecretVariable(name: string, listed: ReadonlySet<string>): boolean {
  return isSecretName(name) || listed.has(name);
}

/** The values of the secret variables among `vars`. */
export function secretValues(vars: Record<string, string>, listed: ReadonlySet<string>): string[] {
  return Object.entries(vars)
    .filter(([name]) => isSecretVariable(name, listed))
    .map(([, value]) => value);
}

/** A masker that knows every secret a workflow starts with: in its env, its steps' env, `vars`. */
export function workflowMasker(
  workflow: Pick<Workflow, "secrets" | "env" | "steps" | "handlers">,
  vars: Record<string, string>,
  extra: Iterable<string> = [],
): SecretMasker {
  const listed = secretNamesOf(workflow);
  const masker = new SecretMasker(extra);
  masker.add(secretValues(workflow.env, listed));
  for (const step of everyStep(workflow)) masker.add(secretValues(step.env, listed));
  masker.add(secretValues(vars, listed));
  return masker;
}

/**
 * The names of a workflow's `secrets:` that no variable, `env:` of the workflow or a step, or
 * step's `expect_vars` (a step exports it) gives: a server takes them from its secrets store, a
 * local run from the environment it was started in.
 */
export function secretsNotGiven(
  workflow: Pick<Workflow, "secrets" | "env" | "steps" | "handlers">,
  vars: Record<string, string>,
): string[] {
  const given = new Set([
    ...Object.keys(vars),
    ...Object.keys(workflow.env),
    ...everyStep(workflow).flatMap((step) => [...Object.keys(step.env), ...step.expectVars]),
  ]);
  return [...new Set(workflow.secrets)].filter((name) => !given.has(name));
}
