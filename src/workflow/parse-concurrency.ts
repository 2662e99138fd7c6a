// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${NAME} in these messages is workflow syntax, not a template.
/** `concurrency:`: the group a workflow's runs take turns in (GitHub Actions' workflow-level form). */
import { isMap, isScalar, type Scalar } from "yaml";
import { quoted } from "../core/quoted-input.js";
import type { ConcurrencySpec } from "./model.js";
import { bracedVariable } from "./templates.js";
import type { YamlReader } from "./yaml-reader.js";

const concurrencyKeys = ["group", "cancel_in_progress"];
/** The longest group name, as written and once its variables are expanded. */
export const maxConcurrencyGroupLength = 200;

/** `concurrency: NAME`, or `concurrency: {group: NAME, cancel_in_progress: BOOL}`. */
export function readConcurrency(reader: YamlReader, node: unknown): ConcurrencySpec | undefined {
  if (isScalar(node) && typeof node.value === "string") {
    const group = checkedGroup(reader, node);
    return group === undefined ? undefined : { group, cancelInProgress: false, pos: reader.pos(node) };
  }
  if (!isMap(node)) {
    reader.report(
      node,
      "concurrency must be a group name or a mapping with group",
      'write concurrency: {group: "deploy-${ENV}", cancel_in_progress: false}',
    );
    return undefined;
  }
  const fields = reader.fields(node, "in concurrency", concurrencyKeys, (key) =>
    key === "cancel-in-progress" ? "write cancel_in_progress, with underscores" : undefined,
  );
  const groupField = fields.get("group");
  if (!groupField) {
    reader.report(node, "concurrency has no group", 'add group: "deploy-${ENV}"');
    return undefined;
  }
  const groupNode = groupField.value;
  const group =
    isScalar(groupNode) && typeof groupNode.value === "string"
      ? checkedGroup(reader, groupNode)
      : reader.string(groupNode, "concurrency.group");
  const cancelField = fields.get("cancel_in_progress");
  const cancelInProgress = cancelField
    ? reader.boolean(cancelField.value, "concurrency.cancel_in_progress")
    : false;
  if (group === undefined || cancelInProgress === undefined) return undefined;
  return { group, cancelInProgress, pos: reader.pos(node) };
}

/** A group name: not empty, not too long, and each `$` starts a `${NAME}`. */
function checkedGroup(reader: YamlReader, node: Scalar): string | undefined {
  const group = String(node.value);
  if (group.trim() === "") {
    reader.report(node, "concurrency group is empty", 'name the group, e.g. "deploy-${ENV}"');
    return undefined;
  }
  if (group.length > maxConcurrencyGroupLength) {
    reader.report(
      node,
      `concurrency group is ${group.length} characters long; at most ${maxConcurrencyGroupLength}`,
      "use a shorter name",
    );
    return undefined;
  }
  const withoutVariables = group.replace(bracedVariable, (match) => " ".repeat(match.length));
  const stray = withoutVariables.indexOf("$");
  if (stray >= 0) {
    reader.reportAt(
      reader.posInScalar(node, stray),
      `concurrency group ${quoted(group)}: a "$" must start a variable written \${NAME}`,
      "variables in a group name are written ${NAME} (no defaults, no $NAME); they come from the run's vars",
    );
    return undefined;
  }
  return group;
}
