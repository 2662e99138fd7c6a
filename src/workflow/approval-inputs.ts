/**
 * The values an approver fills into an approval step's form: each checked against its input's
 * type, defaults filled in, unknown names refused. The filled values become the step's exports.
 */
import type { ApprovalInput } from "./model.js";
import { didYouMean } from "./suggest.js";

/** The longest value an approver may give, in characters: it travels as an environment variable. */
export const maxApprovalInputLength = 4096;
const numberText = /^-?\d+(\.\d+)?$/;

/** Why `value` is no value of `input` ("is not a number"), or undefined when it is one. */
export function approvalInputProblem(input: ApprovalInput, value: string): string | undefined {
  if ([...value].length > maxApprovalInputLength)
    return `is longer than ${maxApprovalInputLength} characters`;
  if (value.includes("\0")) return "holds a NUL byte, which no variable can";
  switch (input.type) {
    case "string":
      return undefined;
    case "number":
      return numberText.test(value) ? undefined : "is not a number (write digits, e.g. 3 or 2.5)";
    case "boolean":
      return value === "true" || value === "false" ? undefined : "is not true or false";
    case "choice":
      return input.options?.includes(value) ? undefined : `is not one of ${(input.options ?? []).join(", ")}`;
  }
}

/** A value as the API's JSON body or the CLI's `--input K=V` gives it. */
export type GivenValue = string | number | boolean;

/**
 * The form's values: what was given, checked, with the defaults of those not given. `problems`
 * says every wrong, unknown or missing value at once.
 */
export function fillApprovalInputs(
  inputs: readonly ApprovalInput[],
  given: Readonly<Record<string, GivenValue>>,
): { values: Record<string, string>; problems: string[] } {
  const values: Record<string, string> = {};
  const problems: string[] = [];
  const names = inputs.map((input) => input.name);
  for (const name of Object.keys(given)) {
    if (names.includes(name)) continue;
    const guess = didYouMean(name, names);
    problems.push(
      inputs.length === 0
        ? `input ${JSON.stringify(name)}: this approval takes no inputs`
        : `unknown input ${JSON.stringify(name)}${guess ? ` (did you mean ${guess}?)` : ""}; its inputs are ${names.join(", ")}`,
    );
  }
  for (const input of inputs) {
    const raw = given[input.name];
    if (raw === undefined || raw === "") {
      if (input.default !== undefined) values[input.name] = input.default;
      else if (input.required) problems.push(`input ${input.name} is required${describeType(input)}`);
      continue;
    }
    const value = String(raw);
    const problem = approvalInputProblem(input, value);
    if (problem) problems.push(`input ${input.name}: ${JSON.stringify(value.slice(0, 100))} ${problem}`);
    else values[input.name] = value;
  }
  return { values, problems };
}

function describeType(input: ApprovalInput): string {
  if (input.type === "choice") return ` (one of ${(input.options ?? []).join(", ")})`;
  return input.type === "string" ? "" : ` (a ${input.type})`;
}
