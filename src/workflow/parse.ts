/**
 * Reads a workflow file (seed 002's form or a seed 003 playbook) into a `Workflow`, reporting
 * every problem at once with its line and column. Nothing runs unless this finds no problem.
 */
import { basename, extname } from "node:path";
import { CST, isMap, LineCounter, Parser, parseDocument, visit, type YAMLError } from "yaml";
import type { Diagnostic, Workflow } from "./model.js";
import { type Inventory, readInventory } from "./parse-hosts.js";
import { readNotify } from "./parse-notify.js";
import { readSteps } from "./parse-steps.js";
import { YamlReader } from "./yaml-reader.js";

/**
 * How deep lists and mappings may nest. A workflow needs about five levels (steps, a step, its
 * args, env); the YAML library's composer recurses per level and overflows the stack near a
 * thousand, so deeper input is refused before it gets there.
 */
export const maxNesting = 64;

const topLevelKeys = [
  "version",
  "name",
  "description",
  "env",
  "vars",
  "secrets",
  "inventory",
  "notify",
  "steps",
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
): { workflow?: Workflow; diagnostics: Diagnostic[] } {
  const deep = tooDeepAt(text);
  if (deep !== undefined) {
    let line = 1;
    for (let at = text.indexOf("\n"); at >= 0 && at < deep; at = text.indexOf("\n", at + 1)) line++;
    const col = deep - text.lastIndexOf("\n", deep - 1);
    const message = `YAML nesting is deeper than ${maxNesting} levels of lists and mappings`;
    const hint = "a workflow needs a few levels (steps, a step, its args, env); check for unclosed [ or {";
    return { diagnostics: [{ file, line, col, message, hint }] };
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const reader = new YamlReader(file, text, doc, lineCounter);
  for (const error of doc.errors) reportSyntaxError(reader, error);
  visit(doc, {
    Alias(_, alias) {
      if (alias.resolve(doc)) return;
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
    name: fields.has("name") ? (reader.text(value("name"), "name") ?? "") : defaultName(file),
    file,
    env: fields.has("env") ? (reader.variableMap(value("env"), "env") ?? {}) : {},
    vars: fields.has("vars") ? (reader.variableMap(value("vars"), "vars") ?? {}) : {},
    secrets: fields.has("secrets") ? (reader.variableNames(value("secrets"), "secrets") ?? []) : [],
    hosts: { local: { kind: "local" } },
    steps: [],
    notify: fields.has("notify") ? readNotify(reader, value("notify")) : [],
  };
  if (fields.has("version")) workflow.version = reader.text(value("version"), "version");
  if (fields.has("description")) reader.text(value("description"), "description");

  // Without an inventory every step runs on the implicit host "local".
  let inventory: Inventory | undefined;
  if (fields.has("inventory")) {
    inventory = readInventory(reader, value("inventory"));
    workflow.hosts = inventory.hosts;
  }
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
 * The offset of the first list or mapping nested deeper than `maxNesting`, if any. The YAML
 * library's tokenizer works without recursion, so its tokens are walked here with a stack.
 */
function tooDeepAt(text: string): number | undefined {
  let first: number | undefined;
  const stack: Array<{ token: CST.Token | null | undefined; depth: number }> = [];
  for (const token of new Parser().parse(text)) stack.push({ token, depth: 0 });
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { token, depth } = next;
    if (!token) continue;
    if (token.type === "document") stack.push({ token: token.value, depth });
    if (!CST.isCollection(token)) continue;
    if (depth + 1 > maxNesting) {
      first = Math.min(first ?? token.offset, token.offset);
      continue;
    }
    for (const item of token.items) {
      stack.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
    }
  }
  return first;
}

function reportSyntaxError(reader: YamlReader, error: YAMLError): void {
  const message = error.message.charAt(0).toLowerCase() + error.message.slice(1);
  reader.reportAt(reader.posAt(error.pos[0]), `YAML syntax: ${message}`, syntaxHint(error));
}

/** A file without `name:` is named after itself: `deploy.yaml` is "deploy". */
function defaultName(file: string): string {
  return basename(file, extname(file));
}

function sorted(diagnostics: Diagnostic[]): Diagnostic[] {
  return [...diagnostics].sort((a, b) => a.line - b.line || a.col - b.col);
}
