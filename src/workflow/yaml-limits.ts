/**
 * Bounds on what a workflow's YAML may cost before anything reads it. Aliases (`*name`) repeat an
 * anchor's node without its text, so a small file can stand for gigabytes once expanded (as a run's
 * vars and the API's JSON hold it). The `yaml` library's `maxAliasCount` bounds only `toJS()`, unused
 * here: the alias count is checked on the tokens, the expanded size on the document before reading.
 */
import { CST, type Document, isAlias, isCollection, isPair, isScalar, type Node } from "yaml";

/** How large a workflow may be and how many aliases it may use. */
export interface WorkflowLimits {
  /** Bytes of the text, and of the workflow with every alias replaced by what it stands for. */
  maxBytes: number;
  /** Aliases (`*name`) in the whole file. */
  maxAliases: number;
}

/** 1 MiB and 100 aliases (the `yaml` library's own default for `maxAliasCount`). */
export const defaultWorkflowLimits: WorkflowLimits = { maxBytes: 1024 * 1024, maxAliases: 100 };

/** A limit passed, at the offset of the text where it was passed. */
export interface LimitPassed {
  offset: number;
  message: string;
  hint: string;
  /** A size limit (WORKFLOW_TOO_LARGE); false for nesting, which is a mistake more often than size. */
  size: boolean;
}

const sizeHint = (limits: WorkflowLimits) =>
  `a workflow is steps and their scripts, not data: keep it (with its aliases expanded) under ${describeBytes(limits.maxBytes)}, and pass big data to steps as files; an operator can raise max_workflow_bytes (RUNYARD_MAX_WORKFLOW_BYTES)`;

/** The text's own size, before any parsing. */
export function textTooLarge(text: string, limits: WorkflowLimits): LimitPassed | undefined {
  const bytes = Buffer.byteLength(text, "utf8");
  if (bytes <= limits.maxBytes) return undefined;
  const offset = Buffer.from(text, "utf8").subarray(0, limits.maxBytes).toString("utf8").length;
  return {
    offset,
    message: `the workflow is ${describeBytes(bytes)}, more than the limit of ${describeBytes(limits.maxBytes)}`,
    hint: sizeHint(limits),
    size: true,
  };
}

/**
 * How deep lists and mappings may nest. A workflow needs about five levels (steps, a step, its
 * args, env); the YAML library's composer recurses per level and overflows the stack near a
 * thousand, so deeper input is refused before it gets there.
 */
export const maxNesting = 64;

/**
 * The first limit the tokens pass (nesting past `maxNesting`, aliases past `maxAliases`), walked with
 * a stack before a document (and the composer's recursion) is built; the tokenizer does not recurse.
 */
export function tokensPassLimit(
  tokens: Iterable<CST.Token>,
  limits: WorkflowLimits,
): LimitPassed | undefined {
  let deepAt: number | undefined;
  const aliases: number[] = [];
  const stack: Array<{ token: CST.Token | null | undefined; depth: number }> = [];
  for (const token of tokens) stack.push({ token, depth: 0 });
  for (let next = stack.pop(); next; next = stack.pop()) {
    const { token, depth } = next;
    if (!token) continue;
    if (token.type === "document") stack.push({ token: token.value, depth });
    if (token.type === "alias") aliases.push(token.offset);
    if (!CST.isCollection(token)) continue;
    if (depth + 1 > maxNesting) {
      deepAt = Math.min(deepAt ?? token.offset, token.offset);
      continue;
    }
    for (const item of token.items) {
      stack.push({ token: item.key, depth: depth + 1 }, { token: item.value, depth: depth + 1 });
    }
  }
  if (deepAt !== undefined) {
    return {
      offset: deepAt,
      message: `YAML nesting is deeper than ${maxNesting} levels of lists and mappings`,
      hint: "a workflow needs a few levels (steps, a step, its args, env); check for unclosed [ or {",
      size: false,
    };
  }
  if (aliases.length <= limits.maxAliases) return undefined;
  aliases.sort((a, b) => a - b);
  return {
    offset: aliases[limits.maxAliases] ?? 0,
    message: `the workflow uses ${aliases.length} aliases (*name), more than the limit of ${limits.maxAliases}`,
    hint: "share a value between steps with a few anchors and aliases, or with `env:` / `vars:` at the top level",
    size: true,
  };
}

/** What `expandAliases` found: where each alias points, or the limit its expansion passed. */
export interface ExpandedAliases {
  targets: Map<Node, Node>;
  passed?: LimitPassed;
}

/**
 * Walks the document once in text order, resolving each alias to the last node anchored with its name
 * before it (YAML's rule), summing the size with every alias expanded (scalar text plus one per node and
 * item, about JSON's). Stops at an alias inside its own node or past `maxBytes`; one without an anchor
 * is the reader's to report.
 */
export function expandAliases(doc: Document, limits: WorkflowLimits): ExpandedAliases {
  const targets = new Map<Node, Node>();
  const anchored = new Map<string, Node>();
  const sizes = new Map<Node, number>();
  const open = new Set<Node>();
  let total = 0;
  let passed: LimitPassed | undefined;

  const sizeOf = (node: unknown): number => {
    if (passed || node === null || node === undefined) return 0;
    if (isAlias(node)) {
      const target = anchored.get(node.source);
      const offset = node.range?.[0] ?? 0;
      if (!target) return 0; // reported by the reader as an alias without its anchor
      if (open.has(target)) {
        passed = {
          offset,
          message: `alias *${node.source} stands for a node that contains it, which never ends`,
          hint: "an alias may repeat a node written before it, not the node it is inside",
          size: false,
        };
        return 0;
      }
      targets.set(node, target);
      const size = sizes.get(target) ?? 0;
      total += size;
      if (total > limits.maxBytes) passed = expandedTooLarge(offset, node.source, limits);
      return size;
    }
    let size = 1;
    const anchor = (node as { anchor?: string }).anchor;
    if (anchor) {
      anchored.set(anchor, node as Node);
      open.add(node as Node);
    }
    if (isScalar(node)) {
      const text = typeof node.value === "string" ? node.value : (node.source ?? String(node.value));
      size += text.length;
      total += size;
    } else if (isPair(node)) {
      size = sizeOf(node.key) + sizeOf(node.value);
    } else if (isCollection(node)) {
      total += 1;
      for (const item of node.items) {
        total += 1;
        size += sizeOf(item) + 1;
      }
    }
    if (anchor) {
      open.delete(node as Node);
      sizes.set(node as Node, size);
    }
    return size;
  };
  sizeOf(doc.contents);
  return passed ? { targets, passed } : { targets };
}

function expandedTooLarge(offset: number, alias: string, limits: WorkflowLimits): LimitPassed {
  return {
    offset,
    message: `with its aliases expanded the workflow passes ${describeBytes(limits.maxBytes)} at alias *${alias}`,
    hint: sizeHint(limits),
    size: true,
  };
}

/** 1048576 as "1 MiB", 1536 as "1.5 KiB", 900 as "900 bytes". */
export function describeBytes(bytes: number): string {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  const shown = unit === 0 ? String(value) : String(Math.round(value * 10) / 10);
  return `${shown} ${units[unit]}`;
}
