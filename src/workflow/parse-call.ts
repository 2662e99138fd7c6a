/**
 * `action: workflow.call` steps: `args: {workflow, version, inputs}`. A call runs once, on the
 * server (the child run places its own steps), so the keys that place or repeat work on hosts
 * are refused with a hint. The called workflow itself is looked up at submit, on a server.
 */
import { isScalar, type YAMLMap } from "yaml";
import type { CallSpec, SourcePos } from "./model.js";
import { fillVariables } from "./templates.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

/** The keys a call step takes; the others of a step mean nothing for it. */
export const callStepKeys = ["name", "description", "action", "args", "when", "continue_on_error", "depends"];
const callArgsKeys = ["workflow", "version", "inputs"];
/** A saved workflow's name, as the server takes it (`runyard workflow save --name`). */
const savedNamePattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** Why a key of a step means nothing on a call step, and what to write instead. */
export function callStepKeyHint(key: string): string | undefined {
  if (key === "targets") {
    return "a workflow.call step runs on the server; the called workflow's steps name their own hosts: remove targets";
  }
  if (key === "retry_count" || key === "retry_delay_seconds" || key === "timeout_seconds") {
    return "a call is not retried or timed here; give the called workflow's steps their own retry_count and timeout_seconds";
  }
  if (key === "expect_vars") return "a call step exports the called workflow's outputs:; remove expect_vars";
  if (["cmd", "script", "shell", "env", "cwd", "export_vars", "matrix", "rollback"].includes(key)) {
    return "a workflow.call step runs no command here; put commands in a step of their own before or after it";
  }
  return undefined;
}

function argsKeyHint(key: string): string | undefined {
  if (key === "name") return 'the saved workflow to run is "workflow"';
  if (key === "with" || key === "vars" || key === "params") return 'values for its inputs go under "inputs"';
  return undefined;
}

/** Reads a call step's args; problems are reported at their line and column. */
export function readCallArgs(
  reader: YamlReader,
  argsField: { key: unknown; value: unknown } | undefined,
  step: YAMLMap,
  label: string,
): CallSpec {
  const spec: CallSpec = { workflow: "", inputs: {}, inputsPos: {}, workflowPos: reader.pos(step) };
  const fields = reader.args(
    argsField,
    step,
    label,
    callArgsKeys,
    argsKeyHint,
    "add args: {workflow: NAME of a saved workflow, inputs: {INPUT_X: value}}",
  );
  if (!argsField || !fields) return spec;

  const workflow = fields.get("workflow");
  if (!workflow) {
    reader.report(
      argsField.key,
      `args of ${label} has no workflow`,
      "add workflow: the name of a saved workflow (`runyard workflow list` shows them)",
    );
  } else {
    spec.workflowPos = reader.pos(workflow.value);
    const name = reader.string(workflow.value, `workflow of ${label}`);
    if (name !== undefined && !savedNamePattern.test(name)) {
      reader.report(
        workflow.value,
        `workflow of ${label}: ${JSON.stringify(name.slice(0, 40))} is not a saved workflow's name`,
        'names are letters, digits, ".", "_" and "-", start with a letter or digit, and are at most 100 long',
      );
    } else if (name !== undefined) {
      spec.workflow = name;
    }
  }

  const version = new FieldReader(reader, fields, label).number("version", "positive integer");
  if (version !== undefined) spec.version = version;

  const inputs = fields.get("inputs");
  if (inputs) {
    const map = reader.variableMap(inputs.value, `inputs of ${label}`);
    if (map) {
      spec.inputs = map;
      const node = reader.mapping(inputs.value, `inputs of ${label}`);
      for (const pair of node?.items ?? []) {
        const key = reader.deref(pair.key);
        if (isScalar(key)) spec.inputsPos[String(key.value)] = reader.pos(pair.value ?? key);
      }
    }
  }
  return spec;
}

/** `${NAME}` in a call's input values, replaced by the variable's value when the step starts. */
export function callInputValues(
  inputs: Record<string, string>,
  vars: Record<string, string>,
): Record<string, string> {
  return Object.fromEntries(Object.entries(inputs).map(([name, text]) => [name, fillVariables(text, vars)]));
}

/** Where a call's input is written, or where the step is when it is not written. */
export function callInputPos(spec: CallSpec, name: string): SourcePos {
  return spec.inputsPos[name] ?? spec.workflowPos;
}
