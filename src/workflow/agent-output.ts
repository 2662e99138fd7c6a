/**
 * An `agent.run` step's `output_schema`: checked as a JSON Schema at parse, the agent's final answer
 * validated against it at run; the fields its `properties` declare become exports, others dropped.
 */
import { createRequire } from "node:module";
import type { Ajv, ErrorObject, ValidateFunction } from "ajv";
import { settingFamilyOf } from "../core/setting-names.js";

let shared: Ajv | undefined;
/** Loaded on first use: most `runyard run`s have no agent step and never load ajv's hundred modules. */
function ajv(): Ajv {
  if (!shared) {
    const { Ajv: AjvClass } = createRequire(import.meta.url)("ajv") as typeof import("ajv");
    shared = new AjvClass({ allErrors: true, strict: false });
  }
  return shared;
}

/** Where a schema fault is: the path of keys inside the schema, and what is wrong. */
export interface SchemaFault {
  path: (string | number)[];
  message: string;
}

/** The faults of a schema (empty: it compiles). */
export function schemaFaults(schema: unknown): SchemaFault[] {
  if (!ajv().validateSchema(schema as object)) {
    return (ajv().errors ?? []).map((e) => ({
      path: pathOf(e.instancePath),
      message: `${e.message ?? "invalid"}`,
    }));
  }
  try {
    ajv().compile(schema as object);
  } catch (error) {
    return [{ path: [], message: error instanceof Error ? error.message : String(error) }];
  }
  return [];
}

function pathOf(pointer: string): (string | number)[] {
  if (pointer === "") return [];
  return pointer
    .slice(1)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/** How an answer fared against the schema. */
export type AnswerCheck = { ok: true; value: Record<string, unknown> } | { ok: false; error: string };

/**
 * The JSON object in an answer: the whole text, else the last fenced ```json block, else the
 * text from its first `{` to its last `}` (agents often say a sentence around it).
 */
function jsonOf(text: string): unknown {
  const candidates = [text.trim()];
  const fences = [...text.matchAll(/```(?:json)?\s*\n([\s\S]*?)```/g)];
  if (fences.length > 0) candidates.push(fences[fences.length - 1]![1]!.trim());
  const first = text.indexOf("{");
  const last = text.lastIndexOf("}");
  if (first >= 0 && last > first) candidates.push(text.slice(first, last + 1));
  for (const candidate of candidates) {
    try {
      return JSON.parse(candidate);
    } catch {}
  }
  return undefined;
}

const validators = new WeakMap<object, ValidateFunction>();

export function checkAnswer(schema: Record<string, unknown>, text: string | undefined): AnswerCheck {
  if (text === undefined || text.trim() === "") return { ok: false, error: "the agent gave no final answer" };
  const value = jsonOf(text);
  if (value === undefined) return { ok: false, error: "the final answer is not JSON" };
  let validate = validators.get(schema);
  if (!validate) {
    validate = ajv().compile(schema);
    validators.set(schema, validate);
  }
  if (!validate(value)) return { ok: false, error: describeErrors(validate.errors ?? []) };
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { ok: false, error: "the final answer is not a JSON object" };
  }
  return { ok: true, value: value as Record<string, unknown> };
}

function describeErrors(errors: ErrorObject[]): string {
  return errors
    .slice(0, 5)
    .map((e) => `${e.instancePath === "" ? "the answer" : e.instancePath} ${e.message ?? "is invalid"}`)
    .join("; ");
}

const exportName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** An answer's exports, and the fields of it that were not exported. */
export interface AnswerExports {
  /** The fields `output_schema` declares under `properties`: strings as they are, anything else as JSON. */
  exports: Record<string, string>;
  /** Fields the schema does not declare (JSON Schema allows them unless it says otherwise): dropped. */
  undeclared: string[];
  /** Declared fields under a name programs read as a setting (a schema parsed before that was refused). */
  settings: string[];
}

/**
 * The answer's fields the schema names under `properties`, as exports. A model that reads what anyone
 * may write wrote the answer, so the workflow picks the variables: an extra `{"BASH_ENV": "$(...)"}`
 * would make the next step's bash run it.
 */
export function answerExports(
  schema: Record<string, unknown>,
  value: Record<string, unknown>,
): AnswerExports {
  const declared = declaredProperties(schema);
  const result: AnswerExports = { exports: {}, undeclared: [], settings: [] };
  for (const [name, field] of Object.entries(value)) {
    if (!declared.has(name)) result.undeclared.push(name);
    else if (!exportName.test(name)) continue;
    else if (settingFamilyOf(name)) result.settings.push(name);
    else result.exports[name] = typeof field === "string" ? field : JSON.stringify(field);
  }
  return result;
}

/** The names a schema declares under its top-level `properties`. */
export function declaredProperties(schema: Record<string, unknown>): Set<string> {
  const properties = schema.properties;
  if (typeof properties !== "object" || properties === null || Array.isArray(properties)) return new Set();
  return new Set(Object.keys(properties));
}

/** The prompt of the one retry turn: what was wrong, and what to answer. */
export function retryPrompt(schema: Record<string, unknown>, error: string): string {
  return [
    `Your final answer did not match the required JSON Schema: ${error}.`,
    "Answer again with only one JSON object matching this schema, and nothing else:",
    JSON.stringify(schema),
  ].join("\n");
}

/** The instruction added to the step's prompt when it has an output schema. */
export function schemaInstruction(schema: Record<string, unknown>): string {
  return [
    "",
    "When you are done, end with a final answer that is only one JSON object matching this JSON Schema:",
    JSON.stringify(schema),
  ].join("\n");
}
