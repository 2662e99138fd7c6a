/**
 * An approval step's `args.inputs`: the form its approver fills in, by name, each
 * `{type: string|number|boolean|choice, options, default, required, description}` (or `null`
 * for a string). The names are variables: the values become the step's exports, so none may be
 * a name programs read as a setting.
 */
import { isMap, isScalar, isSeq } from "yaml";
import { approvalInputProblem } from "./approval-inputs.js";
import { type ApprovalInput, approvalInputTypes } from "./model.js";
import { refuseDeclaredSettingName } from "./outside-values.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

const inputKeys = ["type", "options", "default", "required", "description"];
const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;
/** A form of more fields than this is no approval anyone reads. */
export const maxApprovalInputs = 50;

export function readApprovalInputs(reader: YamlReader, node: unknown, label: string): ApprovalInput[] {
  const where = `inputs of ${label}`;
  const map = reader.mapping(node, where);
  if (!map) return [];
  if (map.items.length > maxApprovalInputs) {
    reader.report(node, `${where} has ${map.items.length} inputs; at most ${maxApprovalInputs}`);
    return [];
  }
  const inputs: ApprovalInput[] = [];
  for (const pair of map.items) {
    const key = reader.deref(pair.key);
    const name = isScalar(key) ? String(key.value) : "";
    if (!variableName.test(name)) {
      reader.report(
        key,
        `${where}: ${JSON.stringify(name)} is not a variable name`,
        "an input's value is exported under its name: use letters, digits and _, not starting with a digit",
      );
      continue;
    }
    if (!refuseDeclaredSettingName(reader, key, name, `${where}:`, "an approver")) continue;
    const input = readInput(reader, reader.deref(pair.value), name, where);
    if (input) inputs.push(input);
  }
  return inputs;
}

function readInput(
  reader: YamlReader,
  node: unknown,
  name: string,
  where: string,
): ApprovalInput | undefined {
  const label = `${where}.${name}`;
  if (node === null || (isScalar(node) && node.value === null))
    return { name, type: "string", required: false };
  if (!isMap(node)) {
    reader.report(
      node,
      `${label} must be a mapping`,
      "write e.g. {type: choice, options: [eu, us], required: true}",
    );
    return undefined;
  }
  const fields = reader.fields(node, `in ${label}`, inputKeys, (key) =>
    key === "choices" || key === "values" ? 'the values to pick from are "options"' : undefined,
  );
  const read = new FieldReader(reader, fields, label);
  const type = fields.has("type") ? read.choice("type", approvalInputTypes, "types") : "string";
  const input: ApprovalInput = { name, type: type ?? "string", required: false };
  let ok = type !== undefined;
  const optionsField = fields.get("options");
  if (optionsField) {
    if (input.type !== "choice") {
      reader.report(
        optionsField.key,
        `${label} has options but is no choice`,
        "write type: choice to pick from options",
      );
      ok = false;
    } else {
      const options = read.stringList("options");
      if (options === undefined) ok = false;
      else if (!isSeq(optionsField.value) || options.length === 0) {
        reader.report(optionsField.value, `options of ${label} must be a list of at least one value`);
        ok = false;
      } else if (new Set(options).size !== options.length) {
        reader.report(optionsField.value, `options of ${label} lists a value twice`);
        ok = false;
      } else input.options = options;
    }
  } else if (input.type === "choice") {
    reader.report(
      fields.get("type")?.key ?? node,
      `${label} is a choice without options`,
      "add options: [the values to pick from]",
    );
    ok = false;
  }
  const required = read.boolean("required");
  if (required !== undefined) input.required = required;
  else if (fields.has("required")) ok = false;
  const defaultField = fields.get("default");
  if (defaultField && ok) {
    const given = reader.text(defaultField.value, `default of ${label}`);
    const problem = given === undefined ? undefined : approvalInputProblem(input, given);
    if (given === undefined) ok = false;
    else if (problem) {
      reader.report(defaultField.value, `default of ${label} ${problem}`);
      ok = false;
    } else input.default = given;
  }
  const description = reader.description(fields, label);
  if (description !== undefined) input.description = description;
  return ok ? input : undefined;
}
