/**
 * `inputs:`: the values a saved workflow takes from outside (a hook's delivery, a calling
 * workflow's `workflow.call` step), each declared with a type and a length cap, under a name
 * starting with `HOOK_` or `INPUT_` (docs/workflows.md "Inputs").
 * A delivery's body is written by whoever pushed the commit or named the branch; it reaches
 * steps as these variables only, never under a name a program reads as its configuration
 * (`MAKEFLAGS`, `OPENSSL_CONF`, `HTTPS_PROXY` ... core/setting-names.ts lists those it knows, and
 * no such list is ever complete: hence a prefix no program reads, not a list of names refused).
 */
import { isMap, isScalar } from "yaml";
import type { InputSpec, InputType } from "./model.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

/** What a hook's inputs start with: no program reads a `HOOK_` variable as a setting. */
export const inputPrefix = "HOOK_";
/** What a called workflow's inputs may start with instead, as GitHub Actions' inputs do. */
export const callInputPrefix = "INPUT_";
export const inputTypes: readonly InputType[] = ["string", "integer", "number", "boolean", "choice"];
/** A string input's cap when it names none, in characters. */
export const defaultInputMaxLength = 1024;
/** The largest cap an input may name: a value travels as an environment variable. */
export const maxInputMaxLength = 64 * 1024;
const inputKeys = ["type", "max_length", "default", "description", "options", "required"];
const inputName = /^(HOOK|INPUT)_[A-Z0-9_]+$/;

export function readInputs(reader: YamlReader, node: unknown): Record<string, InputSpec> {
  const map = reader.mapping(node, "inputs");
  const inputs: Record<string, InputSpec> = {};
  if (!map) return inputs;
  for (const pair of map.items) {
    const key = reader.deref(pair.key);
    const name = isScalar(key) ? String(key.value) : "";
    if (!inputName.test(name)) {
      const stem = name
        .toUpperCase()
        .replace(/^(HOOK|INPUT)_/, "")
        .replace(/[^A-Z0-9_]+/g, "_");
      const fixed = `${inputPrefix}${stem}`;
      reader.report(
        key,
        `input ${JSON.stringify(name)} must be named ${inputPrefix} or ${callInputPrefix} and capitals, digits or _`,
        `values from outside reach steps only under names no program reads as its settings: call it ${fixed} (filled by a hook) or ${callInputPrefix}${stem} (filled by a calling workflow) and read that variable`,
      );
      continue;
    }
    const spec = readInput(reader, reader.deref(pair.value), name);
    if (spec) inputs[name] = spec;
  }
  return inputs;
}

function readInput(reader: YamlReader, node: unknown, name: string): InputSpec | undefined {
  if (node === null || (isScalar(node) && node.value === null)) {
    return { type: "string", maxLength: defaultInputMaxLength, default: "" };
  }
  if (!isMap(node)) {
    reader.report(node, `inputs.${name} must be a mapping`, "write e.g. {type: string, max_length: 200}");
    return undefined;
  }
  const fields = reader.fields(node, `in inputs.${name}`, inputKeys);
  const read = new FieldReader(reader, fields, `inputs.${name}`);
  const type = fields.has("type") ? read.choice("type", inputTypes, "types") : "string";
  if (type === undefined) return undefined;
  const maxLength = fields.has("max_length")
    ? read.number("max_length", "positive integer")
    : defaultInputMaxLength;
  if (maxLength === undefined) return undefined;
  if (maxLength > maxInputMaxLength) {
    reader.report(
      read.value("max_length"),
      `max_length of inputs.${name} is ${maxLength}; at most ${maxInputMaxLength}`,
      "a value travels as an environment variable: pick a field of the body, not a whole object",
    );
    return undefined;
  }
  const spec: InputSpec = { type, maxLength, default: "" };
  const optionsField = fields.get("options");
  if (type === "choice") {
    if (!optionsField) {
      reader.report(
        read.value("type") ?? node,
        `inputs.${name} is a choice with no options`,
        "list the values it may take: options: [staging, production]",
      );
      return undefined;
    }
    const options = read.stringList("options");
    if (options === undefined) return undefined;
    if (options.length === 0) {
      reader.report(optionsField.value, `options of inputs.${name} is empty`, "list at least one value");
      return undefined;
    }
    spec.options = options;
  } else if (optionsField) {
    reader.report(
      optionsField.key,
      `inputs.${name} has options but is of type ${type}`,
      "options go with type: choice; remove them, or make it a choice",
    );
    return undefined;
  }
  const required = read.boolean("required");
  if (required === undefined && fields.has("required")) return undefined;
  if (required) spec.required = true;
  const defaultField = fields.get("default");
  if (defaultField) {
    const given = reader.text(defaultField.value, `default of inputs.${name}`);
    if (given === undefined) return undefined;
    const problem = inputValueProblem(spec, given);
    if (problem) {
      reader.report(defaultField.value, `default of inputs.${name} ${problem}`);
      return undefined;
    }
    spec.default = given;
  }
  reader.description(fields, `inputs.${name}`);
  return spec;
}

/**
 * Why `value` is not a value of `spec` ("is not an integer"), or undefined when it is. Empty is
 * "not given", whatever the type: an input with no default reads as "" until something fills it.
 */
export function inputValueProblem(spec: InputSpec, value: string): string | undefined {
  if (value === "") return spec.required ? "is required and empty" : undefined;
  if (spec.type === "integer" && !/^-?\d{1,18}$/.test(value)) return "is not an integer";
  if (spec.type === "number" && !/^-?\d{1,18}(\.\d{1,18})?$/.test(value)) return "is not a number";
  if (spec.type === "choice" && !spec.options?.includes(value)) {
    return `is not one of its options (${(spec.options ?? []).join(", ")})`;
  }
  if (spec.type === "boolean" && value !== "true" && value !== "false") return "is not true or false";
  if ([...value].length > spec.maxLength) return `is longer than its max_length of ${spec.maxLength}`;
  if (value.includes("\0")) return "holds a NUL byte, which no environment variable can";
  return undefined;
}
