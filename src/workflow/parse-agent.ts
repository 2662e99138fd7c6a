/**
 * `action: agent.run` steps: `args: {agent, prompt, model, repo, cwd, tests, push, budget,
 * output_schema}`. The agent must be one runyard has an adapter for, and `output_schema` a valid
 * JSON Schema of an object (the fields its `properties` declare become the step's exports, none
 * named as a setting); faults are reported at their line and column, a schema's at the key that
 * is wrong.
 */
import { isMap, isScalar, isSeq, type YAMLMap } from "yaml";
import { knownAgentNames } from "../core/agent-names.js";
import { schemaFaults } from "./agent-output.js";
import type { AgentStepSpec } from "./model.js";
import { refuseDeclaredSettingName } from "./outside-values.js";
import { suggestWithList } from "./suggest.js";
import { FieldReader, type YamlReader } from "./yaml-reader.js";

/** The longest prompt a step may write (before its `${VAR}`s are replaced, and after). */
export const maxAgentPromptChars = 100_000;
/** The largest output_schema, as JSON, and how deep its mappings and lists may nest. */
export const maxOutputSchemaBytes = 32 * 1024;
export const maxOutputSchemaDepth = 12;

const agentArgsKeys = ["agent", "prompt", "model", "repo", "cwd", "tests", "push", "budget", "output_schema"];

function argsKeyHint(key: string): string | undefined {
  if (key === "agents")
    return "an agent.run step runs one agent; use one step per agent (or a matrix over AGENT)";
  if (key === "schema" || key === "json_schema")
    return 'the answer\'s JSON Schema goes under "output_schema"';
  if (key === "test") return 'the command run after the agent is "tests"';
  if (key === "cmd" || key === "script") return "an agent.run step runs no command; put it in a cmd.run step";
  return undefined;
}

/** Reads an agent step's args; problems are reported at their line and column. */
export function readAgentArgs(
  reader: YamlReader,
  argsField: { key: unknown; value: unknown } | undefined,
  step: YAMLMap,
  label: string,
): AgentStepSpec {
  const spec: AgentStepSpec = { agent: "", prompt: "", push: false };
  const fields = reader.args(
    argsField,
    step,
    label,
    agentArgsKeys,
    argsKeyHint,
    "add args: {agent: claude_code, prompt: what the agent should do}",
  );
  if (!argsField || !fields) return spec;
  const read = new FieldReader(reader, fields, label);

  const agentField = fields.get("agent");
  if (!agentField) {
    reader.report(
      argsField.key,
      `args of ${label} has no agent`,
      suggestWithList("", knownAgentNames, "agents"),
    );
  } else {
    const agent = read.string("agent");
    if (agent !== undefined && !(knownAgentNames as readonly string[]).includes(agent)) {
      reader.report(
        agentField.value,
        `unknown agent "${agent}" in ${label}`,
        suggestWithList(agent, knownAgentNames, "agents"),
      );
    } else if (agent !== undefined) spec.agent = agent;
  }
  const promptField = fields.get("prompt");
  if (!promptField) {
    reader.report(argsField.key, `args of ${label} has no prompt`, "add prompt: what the agent should do");
  } else {
    const prompt = reader.text(promptField.value, `prompt of ${label}`);
    if (prompt !== undefined && prompt.trim() === "")
      reader.report(promptField.value, `prompt of ${label} is empty`);
    if (prompt !== undefined && prompt.length > maxAgentPromptChars)
      reader.report(
        promptField.value,
        `prompt of ${label} is ${prompt.length} characters, more than the limit of ${maxAgentPromptChars}`,
        "say what to do in the prompt and put the material in the repo or a file the agent reads (repo:, cwd:)",
      );
    spec.prompt = prompt ?? "";
  }
  for (const key of ["model", "repo", "cwd", "tests"] as const) {
    const value = read.string(key);
    if (value !== undefined) spec[key] = value;
  }
  spec.push = read.boolean("push") ?? false;
  if (spec.push && spec.repo === undefined) {
    reader.report(
      fields.get("push")?.key,
      `push of ${label} needs repo`,
      "add repo: the git URL whose branch is pushed",
    );
  }
  const budgetField = fields.get("budget");
  if (budgetField) {
    const budget = reader.mapping(budgetField.value, `budget of ${label}`);
    if (budget) {
      const budgetFields = reader.fields(budget, `in budget of ${label}`, ["tokens", "usd"]);
      const readBudget = new FieldReader(reader, budgetFields, `budget of ${label}`);
      spec.budget = {};
      const tokens = readBudget.number("tokens", "positive integer");
      if (tokens !== undefined) spec.budget.tokens = tokens;
      const usd = readBudget.number("usd", "positive number");
      if (usd !== undefined) spec.budget.usd = usd;
    }
  }
  const schemaField = fields.get("output_schema");
  if (schemaField) {
    const schema = readSchema(reader, schemaField, label);
    if (schema) spec.outputSchema = schema;
  }
  return spec;
}

function readSchema(
  reader: YamlReader,
  field: { key: unknown; value: unknown },
  label: string,
): Record<string, unknown> | undefined {
  const node = reader.mapping(field.value, `output_schema of ${label}`);
  if (!node) return undefined;
  const schema = node.toJSON() as Record<string, unknown>;
  const bytes = Buffer.byteLength(JSON.stringify(schema), "utf8");
  if (bytes > maxOutputSchemaBytes) {
    reader.report(
      node,
      `output_schema of ${label} is ${bytes} bytes as JSON, more than the limit of ${maxOutputSchemaBytes}`,
      "describe only the fields later steps read; the agent's answer is one JSON object of them",
    );
    return undefined;
  }
  const depth = nestingOf(schema);
  if (depth > maxOutputSchemaDepth) {
    reader.report(
      node,
      `output_schema of ${label} nests ${depth} levels deep, more than the limit of ${maxOutputSchemaDepth}`,
      "the answer's fields become exports (strings): keep the schema flat, a few levels at most",
    );
    return undefined;
  }
  const faults = schemaFaults(schema);
  // The first fault is the most precise one (ajv then says which branches of anyOf failed).
  for (const fault of faults.slice(0, 1)) {
    reader.report(
      nodeAt(reader, node, fault.path),
      `output_schema of ${label} is not a valid JSON Schema: ${fault.path.length > 0 ? `${fault.path.join(".")} ` : ""}${fault.message}`,
      "see https://json-schema.org/understanding-json-schema for the keywords",
    );
  }
  if (faults.length > 0) return undefined;
  if (schema.type !== "object") {
    reader.report(
      node,
      `output_schema of ${label} must describe an object (type: object)`,
      "the answer's fields become the step's exports: give type: object and its properties",
    );
    return undefined;
  }
  const properties = reader.deref(node.get("properties", true));
  let named = true;
  if (isMap(properties)) {
    for (const pair of properties.items) {
      const key = reader.deref(pair.key);
      const name = isScalar(key) ? String(key.value) : "";
      const what = `output_schema of ${label}: property`;
      named = refuseDeclaredSettingName(reader, key, name, what, "the agent's answer") && named;
    }
  }
  return named ? schema : undefined;
}

/** How many mappings and lists deep a JSON value nests (a scalar: 0). */
function nestingOf(value: unknown): number {
  if (value === null || typeof value !== "object") return 0;
  let deepest = 0;
  for (const inner of Object.values(value)) deepest = Math.max(deepest, nestingOf(inner));
  return deepest + 1;
}

/** The node at `path` inside the schema, or the deepest one there is. */
function nodeAt(reader: YamlReader, root: unknown, path: (string | number)[]): unknown {
  let node = root;
  for (const part of path) {
    const current = reader.deref(node);
    let next: unknown;
    if (isMap(current)) next = current.get(String(part), true);
    else if (isSeq(current) && typeof part === "number") next = current.get(part, true);
    if (next === undefined) break;
    node = next;
  }
  return node;
}
