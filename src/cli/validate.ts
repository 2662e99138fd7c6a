import { formatUndefinedVariable, undefinedVariables } from "../workflow/undefined-vars.js";
import type { CliContext } from "./context.js";
import { loadWorkflowFile, workflowLimitsOf } from "./workflow-file.js";

/**
 * `runyard validate FILE`: every problem at once; exit 0 when the file is valid, 2 otherwise.
 * A `${NAME}` nothing defines is a warning: the file is valid, but the shell will expand it to "".
 */
export async function validateCommand(file: string, ctx: CliContext): Promise<number> {
  const workflow = await loadWorkflowFile(file, workflowLimitsOf(ctx.config));
  for (const variable of undefinedVariables(workflow, {}, ctx.env)) {
    ctx.stderr.write(`${formatUndefinedVariable(file, variable)}\n`);
  }
  const hosts = Object.keys(workflow.hosts).length;
  ctx.stdout.write(
    `${file}: valid (workflow "${workflow.name}", ${workflow.steps.length} step${workflow.steps.length === 1 ? "" : "s"}, ${hosts} host${hosts === 1 ? "" : "s"})\n`,
  );
  return 0;
}
