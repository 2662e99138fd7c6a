/**
 * `inputs:`: the values a saved workflow takes from outside (a hook's delivery), each declared
 * with a type and a length cap, under a name starting with `HOOK_` (docs/workflows.md "Inputs").
 * A delivery's body is written by whoever pushed the commit or named the branch; it reaches
 * steps as these variables only, never under a name a program reads as its configuration
 * (`MAKEFLAGS`, `OPENSSL_CONF`, `HTTPS_PROXY` ... a list of such names could never be complete).
 */
import { isMap, isScalar } from "yaml";
import type { InputSpec, InputType } from "./model.js";
import { suggestionHint } from "./suggest.js";
import type { YamlReader } from "./yaml-reader.js";

/** What every input's name starts with: no program reads a `HOOK_` variable as a setting. */
export const inputPrefix = "HOOK_";
export const inputTypes: readonly InputType[] = ["string", "integer", "boolean"];
/** A string input's cap when it names none, in characters. */
export const defaultInputMaxLength = 1024;
/** The largest cap an input may name: a value travels as an environment variable. */
export const maxInputMaxLength = 64 * 1024;
const inputKeys = ["type", "max_length", "default", "description"];
const inputName = /^HOOK_[A-Z0-9_]+$/;

export function readInputs(reader: YamlReader, node: unknown): Record<string, InputSpec> {
  const map = reader.mapping(node, "inputs");
  const inputs: Record<string, InputSpec> = {};
  if (!map) return inputs;
  for (const pair of map.items) {
    const key = reader.deref(pair.key);
    const name = isScalar(key) ? String(key.value) : "";
    if (!inputName.test(name)) {
      const fixed = `${inputPrefix}${name
        .toUpperCase()
        .replace(/^HOOK_/, "")
        .replace(/[^A-Z0-9_]+/g, "_")}`;
      reader.report(
        key,
        `input ${JSON.stringify(name)} must be named ${inputPrefix} and capitals, digits or _`,
        `values from outside reach steps only under names no program reads as its settings: call it ${fixed} and read $${fixed}`,
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
  let type: InputType = "string";
  const typeField = fields.get("type");
  if (typeField) {
    const given = reader.string(typeField.value, `type of inputs.${name}`);
    if (given === undefined) return undefined;
    if (!(inputTypes as readonly string[]).includes(given)) {
      reader.report(
        typeField.value,
        `type of inputs.${name} must be one of ${inputTypes.join(", ")}, got ${JSON.stringify(given)}`,
        suggestionHint(given, inputTypes, "types"),
      );
      return undefined;
    }
    type = given as InputType;
  }
  let maxLength = defaultInputMaxLength;
  const lengthField = fields.get("max_length");
  if (lengthField) {
    const given = reader.number(lengthField.value, `max_length of inputs.${name}`, "positive integer");
    if (given === undefined) return undefined;
    if (given > maxInputMaxLength) {
      reader.report(
        lengthField.value,
        `max_length of inputs.${name} is ${given}; at most ${maxInputMaxLength}`,
        "a value travels as an environment variable: pick a field of the body, not a whole object",
      );
      return undefined;
    }
    maxLength = given;
  }
  const spec: InputSpec = { type, maxLength, default: "" };
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
  if (fields.has("description"))
    reader.text(fields.get("description")?.value, `description of inputs.${name}`);
  return spec;
}

/**
 * Why `value` is not a value of `spec` ("is not an integer"), or undefined when it is. Empty is
 * "not given", whatever the type: an input with no default reads as "" until something fills it.
 */
export function inputValueProblem(spec: InputSpec, value: string): string | undefined {
  if (value === "") return undefined;
  if (spec.type === "integer" && !/^-?\d{1,18}$/.test(value)) return "is not an integer";
  if (spec.type === "boolean" && value !== "true" && value !== "false") return "is not true or false";
  if ([...value].length > spec.maxLength) return `is longer than its max_length of ${spec.maxLength}`;
  if (value.includes("\0")) return "holds a NUL byte, which no environment variable can";
  return undefined;
}
