/**
 * Reads a workflow file (the workflow form or the playbook form) into a `Workflow`, reporting
 * every problem at once with its line and column. Nothing runs unless this finds no problem.
 */
import { basename, extname } from "node:path";
import {
  Composer,
  type CST,
  type Document,
  isMap,
  isScalar,
  LineCounter,
  Parser,
  visit,
  type YAMLError,
  YAMLParseError,
} from "yaml";
import { matrixLimit as maxParallelLimit } from "./matrix.js";
import type { Diagnostic, Workflow } from "./model.js";
import { refuseDeclaredSettingName } from "./outside-values.js";
import { readConcurrency } from "./parse-concurrency.js";
import { readHandlers } from "./parse-handlers.js";
import { type Inventory, readInventory } from "./parse-hosts.js";
import { readInputs } from "./parse-inputs.js";
import { readNotify } from "./parse-notify.js";
import { readRunTimeout } from "./parse-run-timeout.js";
import { readSchedules } from "./parse-schedule.js";
import { readSteps } from "./parse-steps.js";
import {
  defaultWorkflowLimits,
  expandAliases,
  type LimitPassed,
  textTooLarge,
  tokensPassLimit,
  type WorkflowLimits,
} from "./yaml-limits.js";
import { maxNameLength, nameHint, YamlReader } from "./yaml-reader.js";

const topLevelKeys = [
  "version",
  "name",
  "description",
  "env",
  "vars",
  "secrets",
  "inventory",
  "notify",
  "max_parallel",
  "steps",
  "concurrency",
  "schedule",
  "inputs",
  "timeout",
  "outputs",
  "on",
];

/** What to do about the YAML syntax errors people make most. */
const syntaxHints: Record<string, string> = {
  DUPLICATE_KEY: "each key may appear once in a mapping",
  TAB_AS_INDENT: "indent with spaces, not tabs",
  BAD_INDENT: "check the indentation: items of one mapping or list line up",
  BLOCK_AS_IMPLICIT_KEY: 'check the indentation, and that each key is followed by ": "',
  MISSING_CHAR: "a quote or bracket is not closed",
  MULTIPLE_DOCS: 'a workflow file holds one YAML document; remove the extra "---"',
  BAD_SCALAR_START: "quote a value that starts with @, ` or another reserved character",
};

function syntaxHint(error: YAMLError): string | undefined {
  // The classic: `when: "${A}" == "x"` ends the value at the second quote.
  if (error.message.includes("at node end")) {
    return `a value that starts with a quote ends at the closing quote; quote all of it: when: '"\${A}" == "x"'`;
  }
  return syntaxHints[error.code];
}

export function parseWorkflow(
  text: string,
  file: string,
  limits: WorkflowLimits = defaultWorkflowLimits,
): { workflow?: Workflow; diagnostics: Diagnostic[] } {
  const tooLarge = textTooLarge(text, limits);
  if (tooLarge) return { diagnostics: [limitDiagnostic(text, file, tooLarge)] };
  const lineCounter = new LineCounter();
  const tokens = [...new Parser(lineCounter.addNewLine).parse(text)];
  const passedOnTokens = tokensPassLimit(tokens, limits);
  if (passedOnTokens) return { diagnostics: [limitDiagnostic(text, file, passedOnTokens)] };
  const doc = composeDocument(tokens, text);
  const expanded = expandAliases(doc, limits);
  if (expanded.passed) return { diagnostics: [limitDiagnostic(text, file, expanded.passed)] };
  const reader = new YamlReader(file, text, doc, lineCounter, expanded.targets);
  for (const error of doc.errors) reportSyntaxError(reader, error);
  visit(doc, {
    Alias(_, alias) {
      if (expanded.targets.has(alias)) return;
      reader.report(alias, `alias *${alias.source} has no anchor &${alias.source} before it`);
    },
  });
  // Past a syntax error the tree is a guess; checking it would bury the real fault in noise.
  if (reader.diagnostics.length > 0) return { diagnostics: sorted(reader.diagnostics) };
  const root = doc.contents;
  if (!isMap(root)) {
    reader.report(
      root,
      root === null ? "the workflow file is empty" : "a workflow file must be a mapping with name and steps",
      "start with `name: NAME` and a `steps:` list",
    );
    return { diagnostics: sorted(reader.diagnostics) };
  }

  const fields = reader.fields(root, "at the top level", topLevelKeys);
  const value = (key: string) => fields.get(key)?.value;
  const workflow: Workflow = {
    name: fields.has("name")
      ? (reader.shownText(value("name"), "name", maxNameLength, nameHint) ?? "")
      : defaultName(file),
    file,
    env: fields.has("env") ? (reader.variableMap(value("env"), "env") ?? {}) : {},
    vars: fields.has("vars") ? (reader.variableMap(value("vars"), "vars") ?? {}) : {},
    secrets: fields.has("secrets") ? (reader.variableNames(value("secrets"), "secrets") ?? []) : [],
    hosts: { local: { kind: "local" } },
    steps: [],
    notify: fields.has("notify") ? readNotify(reader, value("notify")) : [],
  };
  if (fields.has("version")) workflow.version = reader.text(value("version"), "version");
  reader.description(fields);
  if (fields.has("concurrency")) workflow.concurrency = readConcurrency(reader, value("concurrency"));
  if (fields.has("schedule")) workflow.schedules = readSchedules(reader, value("schedule"));
  const inputsField = fields.get("inputs");
  if (inputsField) {
    workflow.inputs = readInputs(reader, inputsField.value);
    workflow.inputsPos = reader.pos(inputsField.key);
    for (const [name, input] of Object.entries(workflow.inputs)) {
      if (name in workflow.vars) {
        reader.report(
          inputsField.key,
          `${name} is both in vars: and in inputs:`,
          "declare it in inputs: only",
        );
      }
      workflow.vars[name] = input.default;
    }
  }
  const maxParallel = fields.has("max_parallel") ? readMaxParallel(reader, value("max_parallel")) : undefined;
  if (maxParallel !== undefined) workflow.maxParallel = maxParallel;
  const runTimeout = fields.has("timeout") ? readRunTimeout(reader, value("timeout")) : undefined;
  if (runTimeout !== undefined) workflow.runTimeoutSeconds = runTimeout;

  // Without an inventory every step runs on the implicit host "local".
  let inventory: Inventory | undefined;
  if (fields.has("inventory")) {
    inventory = readInventory(reader, value("inventory"));
    workflow.hosts = inventory.hosts;
    if (Object.keys(inventory.containerPos).length > 0) workflow.containerPos = inventory.containerPos;
  }
  if (fields.has("outputs")) workflow.outputs = readOutputs(reader, value("outputs"));
  if (fields.has("on")) workflow.handlers = readHandlers(reader, value("on"), inventory);
  const stepsField = fields.get("steps");
  if (stepsField) {
    workflow.steps = readSteps(reader, stepsField, inventory);
  } else {
    reader.report(
      root,
      "the workflow has no steps",
      "add a `steps:` list; each step has a name and an action",
    );
  }

  const diagnostics = sorted(reader.diagnostics);
  return diagnostics.length === 0 ? { workflow, diagnostics } : { diagnostics };
}

/**
 * The first document of the tokens, as the YAML library's `parseDocument` builds it from the
 * text (the tokens are made once, for the limits and for this). A second document is an error.
 */
function composeDocument(tokens: CST.Token[], text: string): Document.Parsed {
  let doc: Document.Parsed | undefined;
  for (const next of new Composer({ prettyErrors: false, uniqueKeys: true }).compose(
    tokens,
    true,
    text.length,
  )) {
    if (!doc) {
      doc = next;
      continue;
    }
    const message = "Source contains multiple documents; please use YAML.parseAllDocuments()";
    doc.errors.push(new YAMLParseError([next.range[0], next.range[1]], "MULTIPLE_DOCS", message));
    break;
  }
  // compose(..., true) always ends with a document, empty for an empty text.
  return doc as Document.Parsed;
}

/** A limit passed, as a diagnostic at its line and column. */
function limitDiagnostic(text: string, file: string, passed: LimitPassed): Diagnostic {
  let line = 1;
  for (let at = text.indexOf("\n"); at >= 0 && at < passed.offset; at = text.indexOf("\n", at + 1)) line++;
  const col = passed.offset - text.lastIndexOf("\n", passed.offset - 1);
  return {
    file,
    line,
    col,
    message: passed.message,
    hint: passed.hint,
    ...(passed.size ? { limit: true } : {}),
  };
}

function reportSyntaxError(reader: YamlReader, error: YAMLError): void {
  const message = error.message.charAt(0).toLowerCase() + error.message.slice(1);
  reader.reportAt(reader.posAt(error.pos[0]), `YAML syntax: ${message}`, syntaxHint(error));
}

/** `max_parallel`: steps at once, 1 to 256 (as many as a matrix may make). */
function readMaxParallel(reader: YamlReader, node: unknown): number | undefined {
  const value = reader.number(node, "max_parallel", "positive integer");
  if (value === undefined || value <= maxParallelLimit) return value;
  reader.report(node, `max_parallel must be at most ${maxParallelLimit}, got ${value}`);
  return undefined;
}

/** A file without `name:` is named after itself: `deploy.yaml` is "deploy". */
function defaultName(file: string): string {
  return basename(file, extname(file));
}

function sorted(diagnostics: Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.col - b.col);
}

/**
 * `outputs:`: the step that calls this workflow exports them, and whoever wrote the caller did
 * not write these names, so none may be a setting's.
 */
function readOutputs(reader: YamlReader, node: unknown): Record<string, string> {
  const outputs = reader.variableMap(node, "outputs") ?? {};
  const map = reader.deref(node);
  if (!isMap(map)) return outputs;
  for (const pair of map.items) {
    const key = reader.deref(pair.key);
    const name = isScalar(key) ? String(key.value) : "";
    const source = "a run of this workflow, in the step that calls it,";
    if (name in outputs && !refuseDeclaredSettingName(reader, key, name, "outputs:", source))
      delete outputs[name];
  }
  return outputs;
}
