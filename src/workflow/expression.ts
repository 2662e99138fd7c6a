/**
 * The `when` / `condition` language: variables (`${NAME}` or a bare `NAME`), strings, numbers,
 * `true` / `false`, comparisons, `&& || !` and parentheses. Nothing else: no property access,
 * no calls, no arithmetic, so a condition can read variables but never run anything.
 *
 * Every value is a string at heart: an unset variable is "", `true` is "true". Two sides that
 * are both decimal numbers compare as numbers, so `${COUNT} > 9` holds for "10".
 */
import type { Expr } from "./model.js";

export type ExpressionError = { message: string; offset: number };

type CompareOp = "==" | "!=" | ">" | "<" | ">=" | "<=";
type Operator = CompareOp | "&&" | "||" | "!" | "(" | ")";

type Token =
  | { kind: "var" | "name"; name: string; pos: number; end: number }
  | { kind: "string"; value: string; pos: number; end: number }
  | { kind: "number"; raw: string; pos: number; end: number }
  | { kind: "op"; op: Operator; pos: number; end: number }
  | { kind: "end"; pos: number; end: number };

const compareOps: readonly string[] = ["==", "!=", ">", "<", ">=", "<="];
const decimal = /^-?\d+(\.\d+)?$/;
const nameStart = /[A-Za-z_]/;
const nameChar = /[A-Za-z0-9_-]/;
const escapes: Record<string, string> = { "\\": "\\", '"': '"', "'": "'", n: "\n" };
/** Far deeper than any real condition; keeps hostile input from exhausting the stack. */
const maxDepth = 64;

class Fault extends Error {
  constructor(
    readonly offset: number,
    what: string,
    why?: string,
  ) {
    super(`${what} at column ${offset + 1}${why ? `: ${why}` : ""}`);
  }
}

function unexpected(source: string, offset: number, why?: string): Fault {
  if (offset >= source.length) return new Fault(offset, "unexpected end of expression", why);
  const char = String.fromCodePoint(source.codePointAt(offset)!);
  return new Fault(offset, `unexpected ${JSON.stringify(char)}`, why);
}

/** A whole token in a message: `unexpected "&&"` rather than its first character. */
function unexpectedToken(source: string, token: Token, why?: string): Fault {
  if (token.kind === "end") return unexpected(source, token.pos, why);
  const text = source.slice(token.pos, token.end);
  const shown = text.length > 20 ? `${text.slice(0, 20)}...` : text;
  return new Fault(token.pos, `unexpected ${JSON.stringify(shown)}`, why);
}

/** Why a stray character is not allowed, for the characters people actually try. */
function strayCharReason(char: string): string | undefined {
  switch (char) {
    case "=":
      return 'use "==" to compare';
    case "&":
      return 'use "&&"';
    case "|":
      return 'use "||"';
    case ".":
      return "property access is not allowed";
    case "$":
      return `write a variable as \${NAME}`;
    case "+":
    case "-":
    case "*":
    case "/":
    case "%":
      return "there is no arithmetic";
    default:
      return undefined;
  }
}

function readName(source: string, start: number): number {
  let i = start + 1;
  while (i < source.length && nameChar.test(source[i]!)) i++;
  return i;
}

/** A name may not be followed by `.` or `(`: those would read as property access or a call. */
function checkAfterName(source: string, end: number): void {
  if (source[end] === ".") throw unexpected(source, end, "property access is not allowed");
  let next = end;
  while (/\s/.test(source[next] ?? "")) next++;
  if (source[next] === "(") throw unexpected(source, next, "calls are not allowed");
}

function readVariable(source: string, pos: number): Token {
  const start = pos + 2;
  if (source[start] === "}") throw new Fault(pos, `empty variable "\${}"`, `write \${NAME}`);
  if (start >= source.length) throw new Fault(pos, 'unterminated "${"', 'close it with "}"');
  if (!nameStart.test(source[start]!)) {
    throw unexpected(source, start, "a variable name starts with a letter or _");
  }
  const end = readName(source, start);
  if (source[end] === "}") return { kind: "var", name: source.slice(start, end), pos, end: end + 1 };
  if (end >= source.length) throw new Fault(pos, 'unterminated "${"', 'close it with "}"');
  if (source[end] === ".") throw unexpected(source, end, "property access is not allowed");
  if (source[end] === "(") throw unexpected(source, end, "calls are not allowed");
  throw unexpected(source, end, 'expected "}" to end the variable name');
}

function readString(source: string, pos: number): Token {
  const quote = source[pos]!;
  let value = "";
  let i = pos + 1;
  while (i < source.length && source[i] !== quote) {
    if (source[i] === "\\") {
      const escaped = escapes[source[i + 1] ?? ""];
      if (escaped === undefined) {
        if (i + 1 >= source.length) throw new Fault(pos, "unterminated string", `close it with ${quote}`);
        throw unexpected(source, i, "the escapes are \\\\ \\\" \\' and \\n");
      }
      value += escaped;
      i += 2;
    } else {
      value += source[i];
      i++;
    }
  }
  if (i >= source.length) throw new Fault(pos, "unterminated string", `close it with ${quote}`);
  return { kind: "string", value, pos, end: i + 1 };
}

function readNumber(source: string, pos: number): Token {
  const match = /^-?\d+(\.\d+)?/.exec(source.slice(pos))!;
  const end = pos + match[0].length;
  if (end < source.length && /[A-Za-z0-9_.]/.test(source[end]!)) {
    throw unexpected(source, end, "not a number: write numbers like 3, -2 or 1.5");
  }
  return { kind: "number", raw: match[0], pos, end };
}

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const char = source[i]!;
    const two = source.slice(i, i + 2);
    let token: Token;
    if (/\s/.test(char)) {
      i++;
      continue;
    } else if (two === "${") {
      token = readVariable(source, i);
    } else if (nameStart.test(char)) {
      const end = readName(source, i);
      checkAfterName(source, end);
      token = { kind: "name", name: source.slice(i, end), pos: i, end };
    } else if (char === '"' || char === "'") {
      token = readString(source, i);
    } else if (/\d/.test(char) || (char === "-" && /\d/.test(source[i + 1] ?? ""))) {
      token = readNumber(source, i);
    } else if (["==", "!=", ">=", "<=", "&&", "||"].includes(two)) {
      token = { kind: "op", op: two as Operator, pos: i, end: i + 2 };
    } else if ("!<>()".includes(char)) {
      token = { kind: "op", op: char as Operator, pos: i, end: i + 1 };
    } else {
      throw unexpected(source, i, strayCharReason(char));
    }
    tokens.push(token);
    i = token.end;
  }
  tokens.push({ kind: "end", pos: source.length, end: source.length });
  return tokens;
}

class Parser {
  private index = 0;

  constructor(
    private readonly source: string,
    private readonly tokens: Token[],
  ) {}

  parse(): Expr {
    if (this.peek().kind === "end")
      throw new Fault(0, "empty expression", `write a condition such as \${OK} == "true"`);
    const expr = this.parseOr(0);
    const rest = this.peek();
    if (rest.kind !== "end") {
      const why = this.isOp(rest, ")") ? 'no "(" to close' : "expected && or || or the end of the expression";
      throw unexpectedToken(this.source, rest, why);
    }
    return expr;
  }

  private peek(): Token {
    return this.tokens[this.index]!;
  }

  private next(): Token {
    return this.tokens[this.index++]!;
  }

  private isOp(token: Token, ...ops: string[]): token is Extract<Token, { kind: "op" }> {
    return token.kind === "op" && ops.includes(token.op);
  }

  private parseOr(depth: number): Expr {
    let left = this.parseAnd(depth);
    while (this.isOp(this.peek(), "||")) {
      const pos = this.next().pos;
      left = { type: "or", left, right: this.parseAnd(depth), pos };
    }
    return left;
  }

  private parseAnd(depth: number): Expr {
    let left = this.parseComparison(depth);
    while (this.isOp(this.peek(), "&&")) {
      const pos = this.next().pos;
      left = { type: "and", left, right: this.parseComparison(depth), pos };
    }
    return left;
  }

  private parseComparison(depth: number): Expr {
    const left = this.parseUnary(depth);
    const op = this.peek();
    if (!this.isOp(op, ...compareOps)) return left;
    this.next();
    const right = this.parseUnary(depth);
    const chained = this.peek();
    if (this.isOp(chained, ...compareOps)) {
      throw unexpectedToken(this.source, chained, "comparisons cannot be chained; add parentheses");
    }
    return { type: "compare", op: op.op as CompareOp, left, right, pos: op.pos };
  }

  private parseUnary(depth: number): Expr {
    const token = this.peek();
    if (depth > maxDepth) throw new Fault(token.pos, "expression nested too deeply");
    if (!this.isOp(token, "!")) return this.parsePrimary(depth);
    this.next();
    return { type: "not", operand: this.parseUnary(depth + 1), pos: token.pos };
  }

  private parsePrimary(depth: number): Expr {
    const token = this.next();
    switch (token.kind) {
      case "var":
        return { type: "var", name: token.name, pos: token.pos };
      case "name":
        if (token.name === "true" || token.name === "false") {
          return { type: "bool", value: token.name === "true", pos: token.pos };
        }
        return { type: "var", name: token.name, pos: token.pos };
      case "string":
        return { type: "string", value: token.value, pos: token.pos };
      case "number":
        return { type: "number", value: Number(token.raw), raw: token.raw, pos: token.pos };
      case "op":
        if (token.op === "(") {
          const inner = this.parseOr(depth + 1);
          const close = this.next();
          if (!this.isOp(close, ")")) {
            throw unexpectedToken(this.source, close, `expected ")" to close "(" at column ${token.pos + 1}`);
          }
          return inner;
        }
        throw unexpectedToken(this.source, token, "expected a value");
      case "end":
        throw unexpectedToken(this.source, token, "expected a value");
    }
  }
}

export function parseExpression(source: string): { expr: Expr } | { error: ExpressionError } {
  try {
    return { expr: new Parser(source, tokenize(source)).parse() };
  } catch (error) {
    if (error instanceof Fault) return { error: { message: error.message, offset: error.offset } };
    throw error;
  }
}

/** A value as the language sees it: its text, and its number when the text is a decimal. */
type Value = { text: string; number?: number };

function textValue(text: string): Value {
  return decimal.test(text) ? { text, number: Number(text) } : { text };
}

/** How a bare value reads as a condition: "", "false" and "0" are false, anything else true. */
export function isTruthy(text: string): boolean {
  return text !== "" && text !== "false" && text !== "0";
}

function compare(op: CompareOp, left: Value, right: Value): boolean {
  const numeric = left.number !== undefined && right.number !== undefined;
  const a = numeric ? left.number! : left.text;
  const b = numeric ? right.number! : right.text;
  switch (op) {
    case "==":
      return a === b;
    case "!=":
      return a !== b;
    case ">":
      return a > b;
    case "<":
      return a < b;
    case ">=":
      return a >= b;
    case "<=":
      return a <= b;
  }
}

function operandValue(expr: Expr, vars: Record<string, string | undefined>): Value {
  switch (expr.type) {
    case "var":
      // Own keys only: a variable named "constructor" must not find Object.prototype's.
      return textValue((Object.hasOwn(vars, expr.name) ? vars[expr.name] : undefined) ?? "");
    case "string":
      return textValue(expr.value);
    case "number":
      return { text: expr.raw, number: expr.value };
    case "bool":
      return { text: String(expr.value) };
    default:
      return { text: String(evaluateExpression(expr, vars)) };
  }
}

/** Whether the condition holds; unset variables read as "". */
export function evaluateExpression(expr: Expr, vars: Record<string, string | undefined>): boolean {
  switch (expr.type) {
    case "not":
      return !evaluateExpression(expr.operand, vars);
    case "and":
      return evaluateExpression(expr.left, vars) && evaluateExpression(expr.right, vars);
    case "or":
      return evaluateExpression(expr.left, vars) || evaluateExpression(expr.right, vars);
    case "compare":
      return compare(expr.op, operandValue(expr.left, vars), operandValue(expr.right, vars));
    default:
      return isTruthy(operandValue(expr, vars).text);
  }
}

/** The variable names an expression reads, each once, in the order they appear. */
export function referencedVars(expr: Expr): string[] {
  const names = new Set<string>();
  const visit = (node: Expr): void => {
    switch (node.type) {
      case "var":
        names.add(node.name);
        break;
      case "not":
        visit(node.operand);
        break;
      case "and":
      case "or":
      case "compare":
        visit(node.left);
        visit(node.right);
        break;
      default:
        break;
    }
  };
  visit(expr);
  return [...names];
}
