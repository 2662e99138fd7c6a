import { RunyardError } from "../../core/errors.js";

/** One step of a path: a property name, or a list index. */
export type PathStep = string | number;

const stepPattern = /^(?:\.([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d{1,6})\]|\["((?:[^"\\]|\\.)*)"\])/;
/** Paths deeper than this are refused: a webhook body's fields sit a few levels down. */
const maxSteps = 32;

/**
 * A JSONPath-like expression, `$` then steps: `.name`, `[0]`, `["odd name"]`, as in `$.ref`,
 * `$.commits[0].id` or `$.labels["pr-id"]`. No wildcards, filters or recursion: a path names one
 * value.
 */
export function parseJsonPath(path: string): PathStep[] {
  const refuse = (why: string) =>
    new RunyardError("INVALID_INPUT", `${JSON.stringify(path)} is not a path into the body: ${why}`, {
      hint: 'Write a path as $ then .name, [index] or ["name"] steps, e.g. $.ref or $.pull_request.head.ref or $.commits[0].id.',
    });
  if (!path.startsWith("$")) throw refuse("it must start with $");
  const steps: PathStep[] = [];
  let rest = path.slice(1);
  while (rest.length > 0) {
    const match = stepPattern.exec(rest);
    if (!match) throw refuse(`cannot read ${JSON.stringify(rest.slice(0, 20))}`);
    if (match[1] !== undefined) steps.push(match[1]);
    else if (match[2] !== undefined) steps.push(Number(match[2]));
    else steps.push(JSON.parse(`"${match[3] ?? ""}"`) as string);
    rest = rest.slice(match[0].length);
    if (steps.length > maxSteps) throw refuse(`it has more than ${maxSteps} steps`);
  }
  if (steps.length === 0) throw refuse("it names the whole body; name a field, e.g. $.ref");
  return steps;
}

/**
 * The value at `steps` in a parsed JSON body, as a variable's text: strings as they are, numbers
 * and booleans as JSON writes them, objects and lists as JSON, null as "". Undefined when the
 * body has no such value.
 */
export function pickJsonPath(body: unknown, steps: readonly PathStep[]): string | undefined {
  let at: unknown = body;
  for (const step of steps) {
    if (typeof step === "number") {
      if (!Array.isArray(at) || step >= at.length) return undefined;
      at = at[step];
    } else {
      if (typeof at !== "object" || at === null || Array.isArray(at) || !Object.hasOwn(at, step))
        return undefined;
      at = (at as Record<string, unknown>)[step];
    }
  }
  if (at === null) return "";
  if (typeof at === "string") return at;
  return JSON.stringify(at);
}
