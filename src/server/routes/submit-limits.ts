import type { FastifyRequest } from "fastify";
import { RunyardError } from "../../core/errors.js";
import {
  isVariableName,
  maxVarsBytes,
  maxVarValueBytes,
  variableNameHint,
} from "../../workflow/yaml-reader.js";

/** The largest `POST /api/runs` body: a workflow and its vars, never bulk data. */
export const runBodyLimit = 8 * 1024 * 1024;

/** The most variables (`vars`) or environment entries (`env`) a submit may carry. */
export const maxSubmitNames = 1000;

/**
 * Refuses a submit with more than `maxSubmitNames` vars or env entries before its schema reads
 * each name (400,000 empty vars, 5 MB, took 3 s to check and 12 s to queue, the server answering
 * nothing else meanwhile), and one whose variables' values are larger than the caps above.
 */
export async function capSubmitVariables(request: FastifyRequest): Promise<void> {
  const body: unknown = request.body;
  if (body === null || typeof body !== "object") return;
  for (const field of ["vars", "env"] as const) {
    const value: unknown = (body as Record<string, unknown>)[field];
    if (value === null || typeof value !== "object") continue;
    const count = Object.keys(value).length;
    if (count > maxSubmitNames)
      throw new RunyardError("INVALID_INPUT", `${field}: at most ${maxSubmitNames} names, not ${count}`, {
        hint: "Pass bulk data as a file or an artifact, not as variables.",
      });
    let total = 0;
    for (const [name, entry] of Object.entries(value)) {
      // The schema coerces every value to a string (an array becomes its items joined by commas):
      // measure the text it becomes, so no shape of value passes the cap.
      const bytes = Buffer.byteLength(typeof entry === "string" ? entry : String(entry));
      total += bytes;
      if (bytes > maxVarValueBytes)
        throw new RunyardError(
          "INVALID_INPUT",
          `${field}: the value of ${JSON.stringify(name.slice(0, 60))} is ${bytes} bytes; each value may hold ${maxVarValueBytes} (128 KiB)`,
          {
            hint: "Pass bulk data as a file or an artifact, not as variables: a step gets each as an environment string, which the kernel refuses past 128 KiB.",
          },
        );
    }
    if (total > maxVarsBytes)
      throw new RunyardError(
        "INVALID_INPUT",
        `${field}: the values hold ${total} bytes in all; a submit's may hold ${maxVarsBytes} (256 KiB)`,
        { hint: "Pass bulk data as a file or an artifact, not as variables." },
      );
  }
}

/** Refuses submitted vars whose names cannot travel as environment variables. */
export function refuseBadVariableNames(vars: Record<string, string>): void {
  const badName = Object.keys(vars).find((name) => !isVariableName(name));
  if (badName === undefined) return;
  const shown = JSON.stringify(badName.length > 40 ? `${badName.slice(0, 40)}...` : badName);
  throw new RunyardError("INVALID_INPUT", `vars: ${shown} is not a valid variable name`, {
    hint: `Variables travel as environment variables: ${variableNameHint} (as in a workflow's vars:).`,
  });
}
