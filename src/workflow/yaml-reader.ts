/**
 * Reads typed values from a parsed YAML document, recording a positioned diagnostic for each wrong one
 * and carrying on, so one pass reports every problem. Readers answer undefined for absent or bad values.
 */
import {
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  type LineCounter,
  type Scalar,
  type YAMLMap,
} from "yaml";
import { quoted } from "../core/quoted-input.js";
import type { Diagnostic, SourcePos } from "./model.js";
import { suggestionHint } from "./suggest.js";

/** One `key: value` of a mapping, with the key node kept for positions. */
export interface Field {
  key: Scalar;
  value: unknown;
}

export type Fields = Map<string, Field>;

export type NumberRule =
  | "positive number"
  | "non-negative number"
  | "positive integer"
  | "non-negative integer";

const variableName = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** What a variable name may be, in `vars:`, `env:`, `--var` or the API's `vars`. */
export const variableNameHint = "names are letters, digits and _, and do not start with a digit";

/** A name that can travel as an environment variable: no `=`, NUL, space or empty name. */
export function isVariableName(name: string): boolean {
  return variableName.test(name);
}

/** The longest runner group or label (`YamlReader.name`), and workflow or step name (`shownText`). */
export const maxNameLength = 200;

/** The most names a list of names (a host's labels) may hold: a runner says at most as many. */
export const maxNamesInList = 64;

export const nameHint = `a name is a short title of at most ${maxNameLength} characters; put longer text in description`;

/** The longest description (of the workflow, a step, an input); names, shown in every run list, are shorter. */
export const maxDescriptionLength = 4000;

export const descriptionHint = `keep a description under ${maxDescriptionLength} characters; longer text belongs in a file of the repository`;

/**
 * The most bytes of one variable's value, and of one map's (`vars:`, `env:`, API `vars`): a step gets each
 * as an environment string, which the kernel refuses past 128 KiB, and every run of a list carries them.
 */
export const maxVarValueBytes = 128 * 1024;
export const maxVarsBytes = 256 * 1024;

const varsHint =
  "pass bulk data to steps as files or artifacts, not as variables: a step gets each as an environment string, which the kernel refuses past 128 KiB";

/** The most problems one check of a file lists. */
export const maxDiagnostics = 100;

export class YamlReader {
  readonly diagnostics: Diagnostic[] = [];

  constructor(
    readonly file: string,
    readonly source: string,
    private readonly doc: Document,
    private readonly lines: LineCounter,
    /** Where each alias points, found once for the whole document (see yaml-limits.ts). */
    private readonly aliasTargets?: ReadonlyMap<unknown, unknown>,
  ) {}

  posAt(offset: number): SourcePos {
    return this.lines.linePos(Math.min(offset, this.source.length));
  }

  /** Where a node starts; nodes without a range (absent values) fall back to the file start. */
  pos(node: unknown): SourcePos {
    const range = (node as { range?: [number, number, number] } | null)?.range;
    return this.posAt(range?.[0] ?? 0);
  }

  report(node: unknown, message: string, hint?: string): void {
    this.reportAt(this.pos(node), message, hint);
  }

  reportAt({ line, col }: SourcePos, message: string, hint?: string): void {
    // A file of thousands of the same mistake is answered with its first ones, not megabytes.
    if (this.diagnostics.length > maxDiagnostics) return;
    if (this.diagnostics.length === maxDiagnostics) {
      this.diagnostics.push({
        file: this.file,
        line,
        col,
        message: `more problems from here on; only the first ${maxDiagnostics} are listed`,
        hint: "fix those, and check the file again",
      });
      return;
    }
    this.diagnostics.push({ file: this.file, line, col, message, ...(hint ? { hint } : {}) });
  }

  /**
   * Where a scalar value's character `offset` sits in the file: as quotes, escapes and folds make them
   * differ, value characters are matched in order against the source, else the scalar's start (`\n`).
   */
  posInScalar(node: Scalar, offset: number): SourcePos {
    const [start, end] = (node as Scalar.Parsed).range;
    const raw = this.source.slice(start, end);
    const value = typeof node.value === "string" ? node.value : (node.source ?? "");
    let i = 0;
    if (node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE") i = 1;
    else if (node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED") i = raw.indexOf("\n") + 1;
    const fallback = this.posAt(start + i);
    for (let k = 0; k <= offset && k < value.length; k++) {
      while (i < raw.length && raw[i] !== value[k]) i++;
      if (i >= raw.length) return fallback;
      if (k < offset) i++;
    }
    return this.posAt(start + i);
  }

  /** The node an alias (`*name`) stands for; any other node as it is. */
  deref(node: unknown): unknown {
    if (!isAlias(node)) return node;
    return this.aliasTargets ? (this.aliasTargets.get(node) ?? null) : (node.resolve(this.doc) ?? null);
  }

  /** The mapping's keys in `valid`; others are reported with a did-you-mean, the valid keys or `hintFor`'s. */
  fields(
    map: YAMLMap,
    where: string,
    valid: readonly string[],
    hintFor?: (key: string) => string | undefined,
  ) {
    const fields: Fields = new Map();
    for (const pair of map.items) {
      const key = this.deref(pair.key);
      if (!isScalar(key) || key.value === null || typeof key.value === "object") {
        this.report(key, `a key ${where} must be a plain name`);
        continue;
      }
      const name = String(key.value);
      if (valid.includes(name)) {
        fields.set(name, { key, value: this.deref(pair.value) });
      } else {
        const hint = hintFor?.(name) ?? suggestionHint(name, valid, "valid keys");
        this.report(key, `unknown key "${name}" ${where}`, hint);
      }
    }
    return fields;
  }

  /** A step's `args` read against `valid`; a step without them is reported with `example`. */
  args(
    argsField: { value: unknown } | undefined,
    step: YAMLMap,
    label: string,
    valid: readonly string[],
    hintFor: (key: string) => string | undefined,
    example: string,
  ): Fields | undefined {
    if (!argsField) {
      this.report(step, `${label} has no args`, example);
      return undefined;
    }
    const args = this.mapping(argsField.value, `args of ${label}`);
    return args && this.fields(args, `in args of ${label}`, valid, hintFor);
  }

  mapping(node: unknown, label: string): YAMLMap | undefined {
    if (isMap(node)) return node;
    this.report(node, `${label} must be a mapping, got ${describe(node)}`);
    return undefined;
  }

  /** A name matched or looked up (a runner group, a label): at most `maxNameLength` chars, checked first. */
  name(node: unknown, label: string): string | undefined {
    const value = this.string(node, label);
    if (value === undefined || value.length <= maxNameLength) return value;
    this.report(node, `${label} is ${value.length} characters long; a name has at most ${maxNameLength}`);
    return undefined;
  }

  /** A list of at most `maxNamesInList` names (see `name`), or one name. */
  nameList(node: unknown, label: string): string[] | undefined {
    const items = this.stringList(node, label);
    if (!items) return undefined;
    if (items.length > maxNamesInList) {
      this.report(
        node,
        `${label} has ${items.length} names; it may have at most ${maxNamesInList}`,
        "name the few labels that pick the runners; a runner has at most 64 labels too",
      );
      return undefined;
    }
    const nodes = isSeq(node) ? node.items : [node];
    const long = items.findIndex((item) => item.length > maxNameLength);
    if (long < 0) return items;
    this.report(
      this.deref(nodes[long]),
      `${label}[${long}] is ${items[long]?.length} characters long; a name has at most ${maxNameLength}`,
    );
    return undefined;
  }

  /** Text listed with its owner (a name, a description): at most `max` characters, so lists stay small. */
  shownText(node: unknown, label: string, max: number, hint: string): string | undefined {
    const value = this.text(node, label);
    if (value === undefined || value.length <= max) return value;
    this.report(node, `${label} is ${value.length} characters long; it may have at most ${max}`, hint);
    return undefined;
  }

  /** `description` of `fields`, when they have one; `owner` is what it describes. */
  description(fields: Fields, owner?: string): string | undefined {
    const field = fields.get("description");
    const label = owner === undefined ? "description" : `description of ${owner}`;
    return field && this.shownText(field.value, label, maxDescriptionLength, descriptionHint);
  }

  /** A string of `choices`; another is reported with the choice it may have meant. */
  choice<T extends string>(node: unknown, label: string, choices: readonly T[], what: string): T | undefined {
    const value = this.string(node, label);
    if (value === undefined || (choices as readonly string[]).includes(value)) return value as T | undefined;
    this.report(
      node,
      `${label} must be one of ${choices.join(", ")}, got ${quoted(value)}`,
      suggestionHint(value, choices, what),
    );
    return undefined;
  }

  /** A string, or a number or boolean taken as written (`version: 1.0` is "1.0"). */
  text(node: unknown, label: string): string | undefined {
    if (isScalar(node) && node.value !== null && typeof node.value !== "object") {
      return typeof node.value === "string" ? node.value : (node.source ?? String(node.value));
    }
    this.report(node, `${label} must be text, got ${describe(node)}`);
    return undefined;
  }

  string(node: unknown, label: string): string | undefined {
    if (isScalar(node) && typeof node.value === "string") return node.value;
    if (isScalar(node) && (typeof node.value === "number" || typeof node.value === "boolean")) {
      // `image: 8675e6677835` (a short image id) or `ref: 1.10` looks like text and is read as a
      // number: say so, and how to write it.
      const written = node.source ?? String(node.value);
      const kind = typeof node.value === "number" ? "a number" : "true or false";
      this.report(
        node,
        `${label} must be a string, got ${written}, which YAML reads as ${kind}`,
        `Quote it to give it as text: "${written}"`,
      );
      return undefined;
    }
    this.report(node, `${label} must be a string, got ${describe(node)}`);
    return undefined;
  }

  boolean(node: unknown, label: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.report(node, `${label} must be true or false, got ${describe(node)}`);
    return undefined;
  }

  number(node: unknown, label: string, rule: NumberRule): number | undefined {
    const value = isScalar(node) ? node.value : undefined;
    if (typeof value === "number" && Number.isFinite(value) && fitsRule(value, rule)) return value;
    this.report(node, `${label} must be a ${rule}, got ${describe(node)}`);
    return undefined;
  }

  /** A list of strings, or one string standing for a list of one. */
  stringList(node: unknown, label: string): string[] | undefined {
    if (isScalar(node) && typeof node.value === "string") return [node.value];
    if (!isSeq(node)) {
      this.report(node, `${label} must be a list of strings, got ${describe(node)}`);
      return undefined;
    }
    const items = node.items.map((item, i) => this.string(this.deref(item), `${label}[${i}]`));
    return items.every((item) => item !== undefined) ? (items as string[]) : undefined;
  }

  variableNames(node: unknown, label: string): string[] | undefined {
    const names = this.stringList(node, label);
    if (!names) return undefined;
    const nodes = isSeq(node) ? node.items : [node];
    const valid = names.map((name, i) => this.checkVariableName(name, this.deref(nodes[i])));
    return valid.every(Boolean) ? names : undefined;
  }

  /** `env:` / `vars:`: variable names to scalars, each taken as text; an empty value is "". */
  variableMap(node: unknown, label: string): Record<string, string> | undefined {
    const map = this.mapping(node, label);
    if (!map) return undefined;
    const values: Record<string, string> = {};
    let valid = true;
    let total = 0;
    for (const pair of map.items) {
      const key = this.deref(pair.key);
      const name = isScalar(key) ? String(key.value) : "";
      const value = this.deref(pair.value);
      if (!this.checkVariableName(name, key)) valid = false;
      else if (value === null || (isScalar(value) && value.value === null)) values[name] = "";
      else {
        const text = this.text(value, `${label}.${name}`);
        const bytes = text === undefined ? 0 : Buffer.byteLength(text);
        total += bytes;
        if (text === undefined) valid = false;
        else if (bytes > maxVarValueBytes) {
          this.report(
            value,
            `${label}.${name} is ${bytes} bytes; a value may hold at most ${maxVarValueBytes} (128 KiB)`,
            varsHint,
          );
          valid = false;
        } else values[name] = text;
      }
    }
    if (valid && total > maxVarsBytes) {
      this.report(
        node,
        `${label} holds ${total} bytes of values; at most ${maxVarsBytes} (256 KiB)`,
        varsHint,
      );
      return undefined;
    }
    return valid ? values : undefined;
  }

  private checkVariableName(name: string, node: unknown): boolean {
    if (isVariableName(name)) return true;
    this.report(node, `"${name}" is not a valid variable name`, variableNameHint);
    return false;
  }
}

/** One mapping's fields read by key, each labelled `KEY of <label>` in messages; an absent one is undefined. */
export class FieldReader {
  constructor(
    readonly reader: YamlReader,
    readonly fields: Fields,
    readonly label: string,
  ) {}

  value(key: string): unknown {
    return this.fields.get(key)?.value;
  }

  text(key: string): string | undefined {
    return this.fields.has(key) ? this.reader.text(this.value(key), `${key} of ${this.label}`) : undefined;
  }

  string(key: string): string | undefined {
    return this.fields.has(key) ? this.reader.string(this.value(key), `${key} of ${this.label}`) : undefined;
  }

  boolean(key: string): boolean | undefined {
    return this.fields.has(key) ? this.reader.boolean(this.value(key), `${key} of ${this.label}`) : undefined;
  }

  number(key: string, rule: NumberRule): number | undefined {
    return this.fields.has(key)
      ? this.reader.number(this.value(key), `${key} of ${this.label}`, rule)
      : undefined;
  }

  stringList(key: string): string[] | undefined {
    return this.fields.has(key)
      ? this.reader.stringList(this.value(key), `${key} of ${this.label}`)
      : undefined;
  }

  choice<T extends string>(key: string, choices: readonly T[], what: string): T | undefined {
    return this.fields.has(key)
      ? this.reader.choice(this.value(key), `${key} of ${this.label}`, choices, what)
      : undefined;
  }
}

function fitsRule(value: number, rule: NumberRule): boolean {
  switch (rule) {
    case "positive number":
      return value > 0;
    case "non-negative number":
      return value >= 0;
    case "positive integer":
      return value > 0 && Number.isInteger(value);
    case "non-negative integer":
      return value >= 0 && Number.isInteger(value);
  }
}

/** How a wrong value reads in a message: strings quoted, other scalars as written. */
export function describe(node: unknown): string {
  if (node === null || node === undefined) return "nothing";
  if (isMap(node)) return "a mapping";
  if (isSeq(node)) return "a list";
  if (isScalar(node)) {
    if (node.value === null) return "nothing";
    if (typeof node.value === "string") return quoted(node.value);
    return node.source ?? String(node.value);
  }
  return "an unsupported value";
}
