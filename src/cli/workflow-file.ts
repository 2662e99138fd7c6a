import { readFile } from "node:fs/promises";
import type { Config } from "../core/config.js";
import { RunyardError } from "../core/errors.js";
import { type Workflow, workflowProblemsError } from "../workflow/model.js";
import { parseWorkflow } from "../workflow/parse.js";
import { defaultWorkflowLimits, type WorkflowLimits } from "../workflow/yaml-limits.js";

/** A workflow file's text, or FILE_NOT_FOUND saying why it could not be read. */
export async function readWorkflowText(path: string): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new RunyardError(
      "FILE_NOT_FOUND",
      code === "ENOENT" ? `workflow file "${path}" does not exist` : `cannot read "${path}": ${code}`,
    );
  }
}

/** Reads and validates a workflow file; every problem at once, as `file:line:col: message`. */
export async function loadWorkflowFile(path: string, limits: WorkflowLimits): Promise<Workflow> {
  const text = await readWorkflowText(path);
  const { workflow, diagnostics } = parseWorkflow(text, path, limits);
  if (!workflow || diagnostics.length > 0) throw workflowProblemsError(path, diagnostics);
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

/** The workflow limits of the config (`max_workflow_bytes`), as the server applies them. */
export function workflowLimitsOf(config: Pick<Config, "maxWorkflowBytes">): WorkflowLimits {
  return { ...defaultWorkflowLimits, maxBytes: config.maxWorkflowBytes };
}
