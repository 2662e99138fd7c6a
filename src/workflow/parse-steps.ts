/**
 * `steps:` in both forms: the workflow's `action` + `args`, the playbook's `command`, `condition`,
 * `fail_fast` and exec options on the step. Unreadable values fall back to defaults, never seen by a
 * caller: a workflow is only returned when no diagnostic was recorded.
 */
import { isMap, isScalar, isSeq, type YAMLMap } from "yaml";
import { parseExpression } from "./expression.js";
import { type Action, actions, approvalHost, type ExecAction, execActions, type Step } from "./model.js";
import { readAgentArgs } from "./parse-agent.js";
import { approvalStepKeyHint, approvalStepKeys, readApprovalArgs } from "./parse-approval.js";
import { callStepKeyHint, callStepKeys, readCallArgs } from "./parse-call.js";
import { checkStepGraph, readGraphKeys } from "./parse-graph.js";
import type { Inventory } from "./parse-hosts.js";
import { readRetry } from "./parse-retry.js";
import { suggestWithList } from "./suggest.js";
import {
  type Field,
  FieldReader,
  type Fields,
  maxNameLength,
  nameHint,
  type YamlReader,
} from "./yaml-reader.js";

const commonKeys = [
  "name",
  "description",
  "targets",
  "expect_vars",
  "timeout_seconds",
  "retry_count",
  "retry_delay_seconds",
  "retry",
];
const graphKeys = ["depends"];
const workflowStepKeys = [
  ...commonKeys,
  ...graphKeys,
  "action",
  "args",
  "when",
  "continue_on_error",
  "matrix",
  "fail_fast",
  "rollback",
  "image",
];
const execKeys = ["shell", "env", "cwd", "export_vars"];
const playbookStepKeys = [
  ...commonKeys,
  ...graphKeys,
  "command",
  "condition",
  "fail_fast",
  "image",
  ...execKeys,
];
const outputKeys = ["max_output_bytes", "output_path"];
const argsKeys: Record<ExecAction, string[]> = {
  "cmd.run": ["cmd", ...execKeys, ...outputKeys],
  "shell.run": ["script", ...execKeys, ...outputKeys],
};
const conditionHint = `a condition uses \${VAR} or NAME, "strings", numbers, true, false, == != > < >= <=, && || ! and parentheses`;

/** Hints for keys that belong to the other step form or to another level. */
function misplacedKeyHint(key: string, playbook: boolean): string | undefined {
  if (playbook) {
    if (key === "when") return 'playbook steps write the condition as "condition"';
    if (key === "continue_on_error")
      return "playbook steps write continue_on_error: true as fail_fast: false";
    if (key === "args" || outputKeys.includes(key)) {
      return "use the action form (action: cmd.run, args: {cmd, ...}) for args, or put command, env, cwd, shell on the step";
    }
    if (key === "matrix" || key === "rollback") {
      return `use the action form (action: cmd.run, args: {cmd, ...}) for a step with ${key}`;
    }
    return undefined;
  }
  if ([...execKeys, ...outputKeys, "cmd", "script"].includes(key)) return `"${key}" goes under args`;
  if (key === "condition") return 'steps with an action write the condition as "when"';
  if (key === "command") return "a step has either action and args, or command (playbook form), not both";
  return undefined;
}

function argsKeyHint(key: string, action: ExecAction | undefined): string | undefined {
  if (key === "image") return '"image" goes on the step itself, next to action';
  if (key === "cmd" && action === "shell.run") return 'shell.run takes its script as "script"';
  if (key === "script" && action === "cmd.run") {
    return 'cmd.run takes its lines as "cmd"; use action: shell.run to run "script" as one script';
  }
  return undefined;
}

function hasKey(map: YAMLMap, key: string): boolean {
  return map.items.some((pair) => isScalar(pair.key) && pair.key.value === key);
}

export function readSteps(reader: YamlReader, field: Field, inventory: Inventory | undefined): Step[] {
  if (!isSeq(field.value)) {
    reader.mapping(field.value, "steps"); // not a list either: reported as the wrong shape
    return [];
  }
  if (field.value.items.length === 0) {
    reader.report(field.key, "steps is empty", "add a step with name, action and args");
    return [];
  }
  const steps: Step[] = [];
  const firstLineOf = new Map<string, number>();
  field.value.items.forEach((item, index) => {
    const step = readStep(reader, reader.deref(item), index, inventory);
    if (!step) return;
    steps.push(step);
    if (step.name === "") return; // reported as missing already
    const first = firstLineOf.get(step.name);
    if (first === undefined) firstLineOf.set(step.name, step.pos.line);
    else reader.reportAt(step.pos, `duplicate step name "${step.name}": the first is at line ${first}`);
  });
  checkStepGraph(reader, steps);
  return steps;
}

function readStep(reader: YamlReader, node: unknown, index: number, inventory: Inventory | undefined) {
  if (!isMap(node)) {
    reader.mapping(node, `step #${index + 1}`);
    return undefined;
  }
  const playbook = hasKey(node, "command") && !hasKey(node, "action");
  const stepValue = (key: string) =>
    reader.deref(node.items.find((pair) => isScalar(pair.key) && pair.key.value === key)?.value);
  const nameNode = stepValue("name");
  const actionNode = stepValue("action");
  const approval = !playbook && isScalar(actionNode) && actionNode.value === "approval";
  const call = !playbook && isScalar(actionNode) && actionNode.value === "workflow.call";
  const agent = !playbook && isScalar(actionNode) && actionNode.value === "agent.run";
  const nameText =
    isScalar(nameNode) && nameNode.value !== null ? String(nameNode.source ?? nameNode.value) : "";
  // Every problem of the step names it: by its place when its name is too long to repeat.
  const label =
    nameText !== "" && nameText.length <= maxNameLength ? `step "${nameText}"` : `step #${index + 1}`;
  const keys = approval
    ? approvalStepKeys
    : call
      ? callStepKeys
      : playbook
        ? playbookStepKeys
        : workflowStepKeys;
  const fields = reader.fields(node, `in ${label}`, keys, (key) =>
    approval ? approvalStepKeyHint(key) : call ? callStepKeyHint(key) : misplacedKeyHint(key, playbook),
  );
  const read = new StepFields(reader, fields, label);

  const nameField = fields.get("name");
  if (!nameField) reader.report(node, `${label} has no name`, "add name: a short unique name for the step");
  const given = nameField && reader.shownText(nameField.value, `name of ${label}`, maxNameLength, nameHint);
  if (nameField && given?.trim() === "" && isScalar(nameField.value) && nameField.value.value !== null) {
    reader.report(nameField.value, `name of ${label} is empty`);
  }
  const name = given ?? "";
  reader.description(fields, label);

  const body =
    approval || call || agent
      ? emptyBody(actionNode.value as Action)
      : playbook
        ? readPlaybookBody(read)
        : readActionBody(reader, node, read, label);
  const step: Step = {
    name,
    // An approval or a call runs once, on the server: it names no host of the inventory.
    targets:
      approval || call ? [approvalHost] : readTargets(reader, node, fields.get("targets"), label, inventory),
    ...body,
    expectVars: fields.has("expect_vars")
      ? (reader.variableNames(fields.get("expect_vars")!.value, `expect_vars of ${label}`) ?? [])
      : [],
    continueOnError: playbook
      ? read.boolean("fail_fast") === false
      : (read.boolean("continue_on_error") ?? false),
    retryCount: read.number("retry_count", "non-negative integer") ?? 0,
    retryDelaySeconds: read.number("retry_delay_seconds", "non-negative number") ?? 1,
    pos: reader.pos(node),
  };
  const image = readImage(reader, fields, label, step, inventory);
  if (image !== undefined) step.image = image;
  const retryField = fields.get("retry");
  if (retryField) {
    const shortForm = fields.get("retry_count") ?? fields.get("retry_delay_seconds");
    const retry = readRetry(reader, retryField, label, shortForm);
    if (retry) step.retry = retry;
  }
  const timeoutSeconds = read.number("timeout_seconds", "positive number");
  if (timeoutSeconds !== undefined) step.timeoutSeconds = timeoutSeconds;
  const when = read.condition(playbook ? "condition" : "when");
  if (when) step.when = when;
  if (approval) step.approval = readApprovalArgs(reader, fields.get("args"), node, label);
  if (call) step.call = readCallArgs(reader, fields.get("args"), node, label);
  if (agent) step.agent = readAgentArgs(reader, fields.get("args"), node, label);
  const readRollbackBody = (map: YAMLMap, rollbackLabel: string) => {
    const rollbackFields = reader.fields(map, `in ${rollbackLabel}`, ["action", "args"]);
    const { action, script, shell, env, cwd, cwdPos } = readActionBody(
      reader,
      map,
      new StepFields(reader, rollbackFields, rollbackLabel),
      rollbackLabel,
      execActions,
    );
    return {
      action,
      script,
      shell,
      env,
      ...(cwd !== undefined ? { cwd } : {}),
      ...(cwdPos ? { cwdPos } : {}),
    };
  };
  Object.assign(step, readGraphKeys(reader, fields, label, name, playbook ? undefined : readRollbackBody));
  return step;
}

type Body = Pick<
  Step,
  "action" | "script" | "shell" | "env" | "cwd" | "cwdPos" | "exportVars" | "maxOutputBytes" | "outputPath"
>;

/** The body of a step that runs no command: an approval, a call, an agent, or one unreadable. */
function emptyBody(action: Action): Body {
  return { action, script: "", shell: "bash", env: {}, exportVars: false };
}

function readPlaybookBody(read: StepFields): Body {
  return { action: "cmd.run", script: read.script("command") ?? "", ...read.execOptions() };
}

/** `valid`: the actions to suggest; a rollback takes only those a runner carries out. */
function readActionBody(
  reader: YamlReader,
  step: YAMLMap,
  read: StepFields,
  label: string,
  valid: readonly string[] = actions,
): Body {
  const actionField = read.fields.get("action");
  if (!actionField) {
    reader.report(
      step,
      `${label} has no action`,
      "add action: cmd.run with args.cmd, or write it as command: ...",
    );
  }
  const actionName = actionField && reader.string(actionField.value, `action of ${label}`);
  const action = execActions.find((known) => known === actionName);
  if (actionName !== undefined && !action) {
    reader.report(
      actionField!.value,
      `unknown action "${actionName}" in ${label}`,
      suggestWithList(actionName, valid, "valid actions"),
    );
  }
  const scriptKey = action === "shell.run" ? "script" : "cmd";
  const argsField = read.fields.get("args");
  const unreadable = emptyBody(action ?? "cmd.run");
  if (!argsField) {
    if (action) reader.report(actionField!.key, `${label} has no args`, `add args.${scriptKey}`);
    return unreadable;
  }
  const args = reader.mapping(argsField.value, `args of ${label}`);
  if (!args) return unreadable;

  const validKeys = action ? argsKeys[action] : [...new Set(Object.values(argsKeys).flat())];
  const argFields = reader.fields(args, `in args of ${label}`, validKeys, (key) => argsKeyHint(key, action));
  const readArgs = new StepFields(reader, argFields, `args of ${label}`);
  const otherKey = scriptKey === "cmd" ? "script" : "cmd";
  // A misnamed script key was already reported above; "missing" would say the same twice.
  if (action && !argFields.has(scriptKey) && !hasKey(args, otherKey)) {
    const what = action === "cmd.run" ? "the lines to run" : "the script to run";
    reader.report(argsField.key, `args of ${label} has no ${scriptKey}`, `add ${scriptKey}: ${what}`);
  }
  const body: Body = {
    action: action ?? "cmd.run",
    script: readArgs.script(scriptKey) ?? "",
    ...readArgs.execOptions(),
  };
  const maxOutputBytes = readArgs.number("max_output_bytes", "positive integer");
  if (maxOutputBytes !== undefined) body.maxOutputBytes = maxOutputBytes;
  const outputPath = readArgs.string("output_path");
  if (outputPath !== undefined) body.outputPath = outputPath;
  return body;
}

/**
 * `image:` of a cmd.run or shell.run step (its pod's, under the Kubernetes executor): an `executor: docker`
 * host or an agent-server would never honour it, so it is an error there, where it is written.
 */
function readImage(
  reader: YamlReader,
  fields: Fields,
  label: string,
  step: Step,
  inventory: Inventory | undefined,
): string | undefined {
  const field = fields.get("image");
  if (!field) return undefined;
  if (step.action !== "cmd.run" && step.action !== "shell.run") {
    reader.report(
      field.key,
      `${label} is ${step.action} and sets image: only cmd.run and shell.run steps run in an image`,
      "remove image from the step",
    );
    return undefined;
  }
  const image = reader.string(field.value, `image of ${label}`);
  if (image === undefined) return undefined;
  const problem = image.trim() === "" ? "is empty" : /\s/.test(image) ? "has white space in it" : undefined;
  if (problem) {
    reader.report(
      field.value,
      `image of ${label} ${problem}`,
      "write an image reference such as busybox:1.36 or registry.example.com/team/build:2",
    );
    return undefined;
  }
  for (const target of step.targets) {
    const host = inventory?.hosts[target];
    if (host?.kind === "direct") {
      reader.report(
        field.key,
        `${label} sets image, but host "${target}" is an agent-server, which runs steps as processes`,
        "run the step on runners with the Kubernetes executor (a host with labels: [kubernetes]), or remove image",
      );
      return undefined;
    }
    if (host?.container) {
      reader.report(
        field.key,
        `${label} sets image, but host "${target}" runs its steps in containers of its own image (executor: docker)`,
        `set the image on host "${target}" (its image: key), or remove image from the step`,
      );
      return undefined;
    }
  }
  return image;
}

function readTargets(
  reader: YamlReader,
  step: YAMLMap,
  field: Field | undefined,
  label: string,
  inventory: Inventory | undefined,
): string[] {
  const defined = inventory?.names ?? ["local"];
  if (!field) {
    if (defined.length === 1) return [...defined];
    if (defined.length > 1) {
      reader.report(
        step,
        `${label} has no targets and the inventory has ${defined.length} hosts`,
        `add targets: [${defined.join(", ")}] or the hosts it should run on`,
      );
    }
    return [];
  }
  const targets = reader.stringList(field.value, `targets of ${label}`) ?? [];
  if (isSeq(field.value) && field.value.items.length === 0) {
    reader.report(
      field.value,
      `targets of ${label} is empty`,
      `name hosts from inventory.hosts: ${defined.join(", ")}`,
    );
  }
  targets.forEach((target, i) => {
    const node = isSeq(field.value) ? field.value.items[i] : field.value;
    if (targets.indexOf(target) !== i) {
      reader.report(node, `${label} lists host "${target}" twice in targets`);
    } else if (!defined.includes(target)) {
      const where = inventory ? "which is not in inventory.hosts" : "but the workflow has no inventory";
      const hint = inventory
        ? suggestWithList(target, defined, "defined hosts")
        : 'without inventory the only host is "local"; define other hosts under inventory.hosts';
      reader.report(node, `${label} targets host "${target}", ${where}`, hint);
    }
  });
  return targets;
}

/** A step's fields, and the readers only steps have. */
class StepFields extends FieldReader {
  /** A script as one string, or a list of lines joined with newlines. */
  script(key: string): string | undefined {
    const lines = this.stringList(key);
    if (lines === undefined) return undefined;
    const script = lines.join("\n");
    if (script.trim() === "") this.reader.report(this.value(key), `${key} of ${this.label} is empty`);
    return script;
  }

  execOptions(): Pick<Step, "shell" | "env" | "cwd" | "cwdPos" | "exportVars"> {
    const envField = this.fields.get("env");
    const options: Pick<Step, "shell" | "env" | "cwd" | "cwdPos" | "exportVars"> = {
      shell: this.string("shell") ?? "bash",
      env: envField ? (this.reader.variableMap(envField.value, `env of ${this.label}`) ?? {}) : {},
      exportVars: this.boolean("export_vars") ?? false,
    };
    const cwd = this.string("cwd");
    if (cwd !== undefined) {
      options.cwd = cwd;
      options.cwdPos = this.reader.pos(this.fields.get("cwd")?.key);
    }
    return options;
  }

  /** `when` / `condition`, with a fault pointed at its exact column in the file. */
  condition(key: "when" | "condition"): Step["when"] {
    const node = this.value(key);
    const source = this.text(key);
    if (source === undefined || !isScalar(node)) return undefined;
    const parsed = parseExpression(source);
    if ("expr" in parsed) return { source, expr: parsed.expr };
    const pos = this.reader.posInScalar(node, parsed.error.offset);
    this.reader.reportAt(pos, `invalid ${key} in ${this.label}: ${parsed.error.message}`, conditionHint);
    return undefined;
  }
}
