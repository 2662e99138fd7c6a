import type { Confinement } from "../core/confinement.js";
import { RunyardError } from "../core/errors.js";
import { type WorkFolderRules, workFolderRefusal } from "../core/work-folders.js";
import { everyStep, type Step, type Workflow } from "./model.js";

/**
 * Why this workflow's steps may not work where they say (core/work-folders.ts decides), as
 * STEP_CWD_NOT_ALLOWED at the line and column of the `cwd` key: a step's own and its rollback's.
 * Steps that run only on direct hosts work on another machine, whose agent-server judges them.
 * Undefined: every step may work in its folder. A runner checks each folder again before it starts.
 */
export function stepFoldersRefusal(
  workflow: Workflow,
  confinement: Confinement,
  rules: Omit<WorkFolderRules, "kind">,
): RunyardError | undefined {
  for (const step of everyStep(workflow)) {
    if (step.targets.every((host) => workflow.hosts[host]?.kind === "direct")) continue;
    for (const body of [step, ...(step.rollback ? [step.rollback] : [])] as Pick<Step, "cwd" | "cwdPos">[]) {
      if (body.cwd === undefined) continue;
      const refusal = workFolderRefusal(body.cwd, confinement, { kind: "step", ...rules });
      if (!refusal) continue;
      const where = body.cwdPos
        ? `${workflow.file ?? "workflow.yaml"}:${body.cwdPos.line}:${body.cwdPos.col}: `
        : "";
      return new RunyardError(refusal.code, `${where}step "${step.name}": ${refusal.message}`);
    }
  }
  return undefined;
}
