import { RunyardError } from "../../core/errors.js";
import type { Store } from "../../store/index.js";
import type { Workflow } from "../../workflow/model.js";

/**
 * Refuses a workflow whose approval steps name a user the run's tenant does not have: nobody by
 * that name could ever answer. The message is the same whether the name is unknown or belongs to
 * another tenant, so a submit never tells a tenant who the others' users are.
 */
export async function checkApprovers(
  users: Pick<Store["users"], "findByName">,
  workflow: Workflow,
  tenantId: string | null,
): Promise<void> {
  const whose = tenantId === null ? "outside any tenant" : `of tenant ${tenantId}`;
  const problems: string[] = [];
  for (const step of workflow.steps) {
    for (const name of step.approval?.approvers ?? []) {
      if (name.startsWith("role:")) continue;
      const user = await users.findByName(name);
      if (user?.tenant_id !== tenantId) {
        const where =
          step.pos.line > 0 ? `${workflow.file ?? "workflow.yaml"}:${step.pos.line}:${step.pos.col}: ` : "";
        problems.push(`${where}step "${step.name}" lists approver "${name}", who is no user ${whose}`);
      }
    }
  }
  if (problems.length === 0) return;
  throw new RunyardError("INVALID_INPUT", problems.join("\n"), {
    hint: `Approvers are users of the run's tenant (\`runyard user list\`), or role:admin / role:member; add the user, or fix the name.`,
  });
}
