/**
 * `action: approval` steps: `args: {message, approvers, timeout_seconds, inputs, required,
 * self_approval, wait}`. An approval runs once,
 * on the server, so the keys that place or repeat work on hosts are refused with a hint.
 */
import { isScalar, isSeq, type YAMLMap } from "yaml";
import { usernamePattern, usernameRule } from "../core/usernames.js";
import type { ApprovalSpec } from "./model.js";
import { readApprovalInputs } from "./parse-approval-inputs.js";
import { readDuration } from "./parse-duration.js";
import { descriptionHint, FieldReader, maxDescriptionLength, type YamlReader } from "./yaml-reader.js";

/** The keys an approval step takes; the others of a step mean nothing for it. */
export const approvalStepKeys = [
  "name",
  "description",
  "action",
  "args",
  "when",
  "continue_on_error",
  "depends",
];
const approvalArgsKeys = [
  "message",
  "approvers",
  "timeout_seconds",
  "inputs",
  "required",
  "self_approval",
  "wait",
];

/** The roles an approver entry may name instead of a username. */
export const approverRoles = ["role:admin", "role:member"] as const;

/** An approval needs at most this many approvers: more is a vote, not a review. */
export const maxRequiredApprovals = 20;
/** Without `timeout_seconds`, a run waits a day for its answer. */
export const defaultApprovalTimeoutSeconds = 86_400;
/** A run waits at most 30 days: past that, nobody remembers what it asked. */
export const maxApprovalTimeoutSeconds = 30 * 86_400;

/** Why a key of a step means nothing on an approval step, and what to write instead. */
export function approvalStepKeyHint(key: string): string | undefined {
  if (key === "targets") return "an approval step runs once, on the server, not on hosts: remove targets";
  if (key === "timeout_seconds") return "an approval's wait goes under args: args.timeout_seconds";
  if (key === "retry_count" || key === "retry_delay_seconds" || key === "retry") {
    return "an approval is answered once and never retried: remove it";
  }
  if (key === "expect_vars") return "an approval step exports no variables: remove expect_vars";
  if (["cmd", "script", "shell", "env", "cwd", "export_vars"].includes(key)) {
    return "an approval step runs no command; put commands in a step of their own before or after it";
  }
  return undefined;
}

function argsKeyHint(key: string): string | undefined {
  if (key === "approver" || key === "users") return 'the list of who may answer is "approvers"';
  if (key === "timeout") return 'the wait is "timeout_seconds", in seconds';
  if (key === "approvals" || key === "min_approvals" || key === "required_approvals") {
    return 'how many approvers must approve is "required"';
  }
  if (key === "form" || key === "fields") return 'what the approver fills in is "inputs"';
  if (key === "wait_timer" || key === "delay") return 'the time before an answer is taken is "wait"';
  if (key === "cmd" || key === "script") {
    return "an approval step runs no command; put commands in a step of their own before or after it";
  }
  return undefined;
}

/** Reads an approval step's args; problems are reported at their line and column. */
export function readApprovalArgs(
  reader: YamlReader,
  argsField: { key: unknown; value: unknown } | undefined,
  step: YAMLMap,
  label: string,
): ApprovalSpec {
  const spec: ApprovalSpec = {
    message: "",
    approvers: [],
    timeoutSeconds: defaultApprovalTimeoutSeconds,
    inputs: [],
    required: 1,
    selfApproval: true,
    waitSeconds: 0,
  };
  const fields = reader.args(
    argsField,
    step,
    label,
    approvalArgsKeys,
    argsKeyHint,
    "add args: {message: what the approvers decide, approvers: [a username or role:admin]}",
  );
  if (!argsField || !fields) return spec;
  const read = new FieldReader(reader, fields, label);

  const message = fields.get("message");
  if (!message) {
    reader.report(argsField.key, `args of ${label} has no message`, "add message: what the approvers decide");
  } else {
    // Shown to every approver and kept with the run: capped as a description is.
    spec.message =
      reader.shownText(message.value, `message of ${label}`, maxDescriptionLength, descriptionHint) ?? "";
    if (isScalar(message.value) && typeof message.value.value === "string" && spec.message.trim() === "") {
      reader.report(message.value, `message of ${label} is empty`, "say what the approvers decide");
    }
  }

  const approvers = fields.get("approvers");
  if (!approvers) {
    reader.report(
      argsField.key,
      `args of ${label} has no approvers`,
      "add approvers: [a username, role:admin or role:member of the run's tenant]",
    );
  } else {
    spec.approvers = readApprovers(reader, approvers.value, label);
  }

  const seconds = read.number("timeout_seconds", "positive number");
  if (seconds !== undefined && seconds > maxApprovalTimeoutSeconds) {
    reader.report(
      read.value("timeout_seconds"),
      `timeout_seconds of ${label} is ${seconds}, more than 30 days (${maxApprovalTimeoutSeconds})`,
      "a run waits for an answer 30 days at most",
    );
  } else if (seconds !== undefined) spec.timeoutSeconds = seconds;
  readApprovalRules(read, spec);
  return spec;
}

/** `inputs`, `required`, `self_approval` and `wait`: the form, and who answers when. */
function readApprovalRules(read: FieldReader, spec: ApprovalSpec): void {
  const { reader, fields, label } = read;
  if (fields.has("inputs")) spec.inputs = readApprovalInputs(reader, read.value("inputs"), label);
  const count = read.number("required", "positive integer");
  const named = spec.approvers.filter((entry) => !entry.startsWith("role:"));
  const onlyNames = spec.approvers.length > 0 && named.length === spec.approvers.length;
  if (count !== undefined && onlyNames && count > named.length) {
    reader.report(
      read.value("required"),
      `required of ${label} is ${count}, but only ${named.length} approver${named.length === 1 ? " is" : "s are"} listed`,
      "each approval comes from a different approver: list more approvers (or a role), or require fewer",
    );
  } else if (count !== undefined && count > maxRequiredApprovals) {
    reader.report(
      read.value("required"),
      `required of ${label} is ${count}; at most ${maxRequiredApprovals}`,
    );
  } else if (count !== undefined) spec.required = count;
  spec.selfApproval = read.boolean("self_approval") ?? true;
  const wait = fields.get("wait");
  if (wait) {
    const seconds = readDuration(reader, wait.value, `wait of ${label}`, false);
    if (seconds !== undefined && seconds >= spec.timeoutSeconds) {
      reader.report(
        wait.value,
        `wait of ${label} (${seconds} s) is not shorter than its timeout_seconds (${spec.timeoutSeconds} s)`,
        "nobody could answer before the step times out: shorten the wait or raise timeout_seconds",
      );
    } else if (seconds !== undefined) spec.waitSeconds = seconds;
  }
}

function readApprovers(reader: YamlReader, node: unknown, label: string): string[] {
  const what = `approvers of ${label}`;
  if (!isSeq(node)) {
    reader.report(node, `${what} must be a list, e.g. [alice, role:admin]`);
    return [];
  }
  if (node.items.length === 0) {
    reader.report(node, `${what} is empty`, "name at least one username, role:admin or role:member");
    return [];
  }
  const names: string[] = [];
  node.items.forEach((item, i) => {
    const itemNode = reader.deref(item);
    const name = reader.string(itemNode, `${what}[${i}]`);
    if (name === undefined) return;
    if (name.startsWith("role:")) {
      if (!(approverRoles as readonly string[]).includes(name)) {
        reader.report(itemNode, `${what}: unknown role "${name}"`, `roles: ${approverRoles.join(", ")}`);
        return;
      }
    } else if (!usernamePattern.test(name)) {
      reader.report(
        itemNode,
        `${what}: "${name}" is not a username`,
        `${usernameRule}; or write role:admin or role:member`,
      );
      return;
    }
    if (names.includes(name)) {
      reader.report(itemNode, `${what} lists "${name}" twice`);
      return;
    }
    names.push(name);
  });
  return names;
}
