import type { CliContext } from "./context.js";
import { loadWorkflowFile, workflowLimitsOf } from "./workflow-file.js";

/** `runyard validate FILE`: every problem at once; exit 0 when the file is valid, 2 otherwise. */
export async function validateCommand(file: string, ctx: CliContext): Promise<number> {
  const workflow = await loadWorkflowFile(file, workflowLimitsOf(ctx.config));
  const hosts = Object.keys(workflow.hosts).length;
  ctx.stdout.write(
    `${file}: valid (workflow "${workflow.name}", ${workflow.steps.length} step${workflow.steps.length === 1 ? "" : "s"}, ${hosts} host${hosts === 1 ? "" : "s"})\n`,
  );
  return 0;
}
