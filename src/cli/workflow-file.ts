import { readFile } from "node:fs/promises";
import { RunyardError } from "../core/errors.js";
import { formatDiagnostic, type Workflow } from "../workflow/model.js";
import { parseWorkflow } from "../workflow/parse.js";

/** Reads and validates a workflow file; every problem at once, as `file:line:col: message`. */
export async function loadWorkflowFile(path: string): Promise<Workflow> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RunyardError(
      "FILE_NOT_FOUND",
      code === "ENOENT" ? `workflow file "${path}" does not exist` : `cannot read "${path}": ${code}`,
    );
  }
  const { workflow, diagnostics } = parseWorkflow(text, path);
  if (!workflow || diagnostics.length > 0) {
    throw new RunyardError(
      "WORKFLOW_INVALID",
      `${diagnostics.length} problem${diagnostics.length === 1 ? "" : "s"} in ${path}:\n${diagnostics.map(formatDiagnostic).join("\n")}`,
      { details: diagnostics },
    );
  }
  return workflow;
}

/** Parses repeated `--var K=V` flags. */
export function parseVarFlags(flags: string[]): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const flag of flags) {
    const eq = flag.indexOf("=");
    const name = eq > 0 ? flag.slice(0, eq) : "";
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
      throw new RunyardError("USAGE", `--var "${flag}" is not NAME=value`, {
        hint: "Write --var NAME=value; NAME is letters, digits and _, not starting with a digit.",
      });
    }
    vars[name] = flag.slice(eq + 1);
  }
  return vars;
}
