// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import fc from "fast-check";
import { describe, expect, test } from "vitest";
import { evaluateExpression, parseExpression, referencedVars } from "./expression.js";
import type { Expr } from "./model.js";

function parsed(source: string): Expr {
  const result = parseExpression(source);
  if ("error" in result) throw new Error(`"${source}" did not parse: ${result.error.message}`);
  return result.expr;
}

function holds(source: string, vars: Record<string, string | undefined> = {}): boolean {
  return evaluateExpression(parsed(source), vars);
}

function fault(source: string): { message: string; offset: number } {
  const result = parseExpression(source);
  if ("expr" in result) throw new Error(`"${source}" parsed but should not have`);
  return result.error;
}

describe("reading variables", () => {
  test("${NAME} and a bare NAME both read a variable", () => {
    expect(holds('${OK} == "true"', { OK: "true" })).toBe(true);
    expect(holds('OK == "true"', { OK: "true" })).toBe(true);
  });

  test("an unset variable reads as the empty string", () => {
    expect(holds('${MISSING} == ""')).toBe(true);
    expect(holds("${MISSING}")).toBe(false);
  });

  test("a bare name may contain - and digits after its first character", () => {
    expect(holds("build-2 == ok", { "build-2": "x", ok: "x" })).toBe(true);
  });

  test("a variable named like an object property is just unset", () => {
    expect(holds('constructor == ""')).toBe(true);
  });
});

describe("comparing", () => {
  test('true and false are the strings "true" and "false"', () => {
    expect(holds("lint_enabled == true", { lint_enabled: "true" })).toBe(true);
    expect(holds('false == "false"')).toBe(true);
  });

  test("two decimal numbers compare as numbers: 10 > 9", () => {
    expect(holds("${COUNT} > 9", { COUNT: "10" })).toBe(true);
    expect(holds('"10" > "9"')).toBe(true);
    expect(holds("${A} == 1.0", { A: "1" })).toBe(true);
    expect(holds("-2 < -1.5")).toBe(true);
  });

  test('anything not a decimal number compares as text: "10" < "9a"', () => {
    expect(holds('"10" < "9a"')).toBe(true);
    expect(holds('"abc" < "abd"')).toBe(true);
    expect(holds("${A} != 3", { A: "3 " })).toBe(true);
  });

  test("numbers are not trimmed or read in other notations", () => {
    expect(holds('" 3" == 3')).toBe(false);
    expect(holds('"1e3" == 1000')).toBe(false);
  });

  test('the workflow format\'s example: ${OK} == "true" && ${COUNT} > 1', () => {
    const source = '${OK} == "true" && ${COUNT} > 1';
    expect(holds(source, { OK: "true", COUNT: "3" })).toBe(true);
    expect(holds(source, { OK: "true", COUNT: "1" })).toBe(false);
    expect(holds(source, { COUNT: "3" })).toBe(false);
  });
});

describe("truthiness of a bare value", () => {
  test.each(["", "false", "0"])("%j is false", (value) => {
    expect(holds("${X}", { X: value })).toBe(false);
  });

  test.each(["true", "1", "no", "0.0", "FALSE"])("%j is true", (value) => {
    expect(holds("${X}", { X: value })).toBe(true);
  });

  test("! negates truthiness", () => {
    expect(holds("!${X}", { X: "" })).toBe(true);
    expect(holds("!${X}", { X: "yes" })).toBe(false);
  });
});

describe("operators", () => {
  test("! binds tighter than comparisons: !A == B is (!A) == B", () => {
    expect(holds("!A == false", { A: "yes" })).toBe(true);
  });

  test("&& binds tighter than ||", () => {
    expect(holds("true || false && false")).toBe(true);
    expect(holds("(true || false) && false")).toBe(false);
  });

  test("strings take \\\\, \\\", \\' and \\n escapes, in either quote", () => {
    expect(holds(String.raw`A == "a\"b\\c\nd"`, { A: 'a"b\\c\nd' })).toBe(true);
    expect(holds(String.raw`A == 'it\'s'`, { A: "it's" })).toBe(true);
  });

  test("a condition may span lines", () => {
    expect(holds('${A} == "x" &&\n  ${B} == "y"\n', { A: "x", B: "y" })).toBe(true);
  });
});

describe("what is not allowed, with the column of the fault", () => {
  test.each([
    ["", 0, 'empty expression at column 1: write a condition such as ${OK} == "true"'],
    ["a.b", 1, 'unexpected "." at column 2: property access is not allowed'],
    ["${a.b}", 3, 'unexpected "." at column 4: property access is not allowed'],
    ["${A} == f(x)", 9, 'unexpected "(" at column 10: calls are not allowed'],
    ["${A} = 1", 5, 'unexpected "=" at column 6: use "==" to compare'],
    ["A & B", 2, 'unexpected "&" at column 3: use "&&"'],
    ["A | B", 2, 'unexpected "|" at column 3: use "||"'],
    ["A B", 2, 'unexpected "B" at column 3: expected && or || or the end of the expression'],
    ['A == "open', 5, 'unterminated string at column 6: close it with "'],
    ["A == 'x\\t'", 7, 'unexpected "\\\\" at column 8: the escapes are \\\\ \\" \\\' and \\n'],
    ["(A == 1", 7, 'unexpected end of expression at column 8: expected ")" to close "(" at column 1'],
    ["A == 1)", 6, 'unexpected ")" at column 7: no "(" to close'],
    ["A == ", 5, "unexpected end of expression at column 6: expected a value"],
    ["A == && B", 5, 'unexpected "&&" at column 6: expected a value'],
    ["1 < A < 3", 6, 'unexpected "<" at column 7: comparisons cannot be chained; add parentheses'],
    ["${}", 0, 'empty variable "${}" at column 1: write ${NAME}'],
    ["${A", 0, 'unterminated "${" at column 1: close it with "}"'],
    ["$A", 0, 'unexpected "$" at column 1: write a variable as ${NAME}'],
    ["${1A}", 2, 'unexpected "1" at column 3: a variable name starts with a letter or _'],
    ["A == 1.2.3", 8, 'unexpected "." at column 9: not a number: write numbers like 3, -2 or 1.5'],
    ["A == 3abc", 6, 'unexpected "a" at column 7: not a number: write numbers like 3, -2 or 1.5'],
    ["A + 1", 2, 'unexpected "+" at column 3: there is no arithmetic'],
  ])("%j", (source, offset, message) => {
    expect(fault(source)).toEqual({ offset, message });
  });

  test("nesting deeper than any real condition is refused, not a stack overflow", () => {
    expect(fault(`${"(".repeat(10_000)}A${")".repeat(10_000)}`).message).toMatch(
      /^expression nested too deeply/,
    );
    expect(fault(`${"!".repeat(10_000)}A`).message).toMatch(/^expression nested too deeply/);
  });
});

test("referencedVars lists each variable once, in order of appearance", () => {
  expect(referencedVars(parsed('${B} == "x" || (A && !${B}) || true'))).toEqual(["B", "A"]);
});

// ---- Properties ----

/** A well-formed expression without positions, as the generator builds it. */
type Shape =
  | { type: "var"; name: string }
  | { type: "string"; value: string }
  | { type: "number"; value: number; raw: string }
  | { type: "bool"; value: boolean }
  | { type: "not"; operand: Shape }
  | { type: "and" | "or"; left: Shape; right: Shape }
  | { type: "compare"; op: (typeof compareOps)[number]; left: Shape; right: Shape };

const names = ["A", "B", "my_var", "build-2"];
const compareOps = ["==", "!=", ">", "<", ">=", "<="] as const;

const decimalText = fc
  .tuple(fc.integer({ min: -10_000, max: 10_000 }), fc.option(fc.nat({ max: 999 }), { nil: undefined }))
  .map(([whole, fraction]) => `${whole}${fraction === undefined ? "" : `.${fraction}`}`);

const leaf: fc.Arbitrary<Shape> = fc.oneof(
  fc.constantFrom(...names).map((name): Shape => ({ type: "var", name })),
  fc.string({ maxLength: 6 }).map((value): Shape => ({ type: "string", value })),
  decimalText.map((raw): Shape => ({ type: "number", value: Number(raw), raw })),
  fc.boolean().map((value): Shape => ({ type: "bool", value })),
);

const { shape } = fc.letrec<{ shape: Shape }>((tie) => ({
  shape: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    leaf,
    tie("shape").map((operand): Shape => ({ type: "not", operand })),
    fc
      .tuple(fc.constantFrom("and" as const, "or" as const), tie("shape"), tie("shape"))
      .map(([type, left, right]): Shape => ({ type, left, right })),
    fc
      .tuple(fc.constantFrom(...compareOps), tie("shape"), tie("shape"))
      .map(([op, left, right]): Shape => ({ type: "compare", op, left, right })),
  ),
}));

const values = fc.oneof(
  decimalText,
  fc.constantFrom("", "true", "false", "0", "yes"),
  fc.string({ maxLength: 4 }),
);
const varsArbitrary = fc.dictionary(fc.constantFrom(...names), values);

const precedence = { or: 1, and: 2, compare: 3, not: 4 } as const;

/** Prints with only the parentheses precedence needs, so the parser's precedence is tested too. */
function print(node: Shape, style: "braced" | "bare", quote: '"' | "'"): string {
  const child = (sub: Shape, min: number) => {
    const text = print(sub, style, quote);
    const level = sub.type in precedence ? precedence[sub.type as keyof typeof precedence] : 5;
    return level < min ? `(${text})` : text;
  };
  switch (node.type) {
    case "var":
      return style === "braced" ? `\${${node.name}}` : node.name;
    case "string": {
      const escaped = node.value.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replaceAll(quote, `\\${quote}`);
      return `${quote}${escaped}${quote}`;
    }
    case "number":
      return node.raw;
    case "bool":
      return String(node.value);
    case "not":
      return `!${child(node.operand, 4)}`;
    case "and":
      return `${child(node.left, 2)} && ${child(node.right, 3)}`;
    case "or":
      return `${child(node.left, 1)} || ${child(node.right, 2)}`;
    case "compare":
      return `${child(node.left, 4)} ${node.op} ${child(node.right, 4)}`;
  }
}

function withoutPositions(expr: Expr): Shape {
  const { pos: _pos, ...rest } = expr;
  switch (rest.type) {
    case "not":
      return { ...rest, operand: withoutPositions(rest.operand) };
    case "and":
    case "or":
    case "compare":
      return { ...rest, left: withoutPositions(rest.left), right: withoutPositions(rest.right) } as Shape;
    default:
      return rest;
  }
}

/** The language's meaning written out plainly, independent of the implementation. */
function reference(node: Shape, vars: Record<string, string>): boolean {
  const text = (operand: Shape): string => {
    if (operand.type === "var") return vars[operand.name] ?? "";
    if (operand.type === "string") return operand.value;
    if (operand.type === "number") return operand.raw;
    if (operand.type === "bool") return operand.value ? "true" : "false";
    return reference(operand, vars) ? "true" : "false";
  };
  switch (node.type) {
    case "not":
      return !reference(node.operand, vars);
    case "and":
      return reference(node.left, vars) && reference(node.right, vars);
    case "or":
      return reference(node.left, vars) || reference(node.right, vars);
    case "compare": {
      const [a, b] = [text(node.left), text(node.right)];
      const numeric = /^-?\d+(\.\d+)?$/.test(a) && /^-?\d+(\.\d+)?$/.test(b);
      const [x, y]: [string | number, string | number] = numeric ? [Number(a), Number(b)] : [a, b];
      return { "==": x === y, "!=": x !== y, ">": x > y, "<": x < y, ">=": x >= y, "<=": x <= y }[node.op];
    }
    default:
      return !["", "false", "0"].includes(text(node));
  }
}

function namesIn(node: Shape): string[] {
  if (node.type === "var") return [node.name];
  if (node.type === "not") return namesIn(node.operand);
  if ("left" in node) return [...namesIn(node.left), ...namesIn(node.right)];
  return [];
}

describe("properties", () => {
  test("a printed expression parses back to the same tree and means what the reference says", () => {
    fc.assert(
      fc.property(
        shape,
        fc.constantFrom("braced" as const, "bare" as const),
        fc.constantFrom('"' as const, "'" as const),
        varsArbitrary,
        (tree, style, quote, vars) => {
          const source = print(tree, style, quote);
          const expr = parsed(source);
          expect(withoutPositions(expr)).toEqual(tree);
          expect(evaluateExpression(expr, vars)).toBe(reference(tree, vars));
          expect(referencedVars(expr)).toEqual([...new Set(namesIn(tree))]);
        },
      ),
      { numRuns: 500 },
    );
  });

  test("comparing two numeric variables agrees with JavaScript's number comparison", () => {
    fc.assert(
      fc.property(decimalText, decimalText, fc.constantFrom(...compareOps), (a, b, op) => {
        const expected = {
          "==": +a === +b,
          "!=": +a !== +b,
          ">": +a > +b,
          "<": +a < +b,
          ">=": +a >= +b,
          "<=": +a <= +b,
        };
        expect(holds(`\${A} ${op} \${B}`, { A: a, B: b })).toBe(expected[op]);
        expect(holds(`\${A} ${op} ${b}`, { A: a })).toBe(expected[op]);
      }),
    );
  });

  test("!!X is the truthiness of X", () => {
    fc.assert(
      fc.property(values, (value) => {
        expect(holds("!!${X}", { X: value })).toBe(holds("${X}", { X: value }));
        expect(holds("!!${X}", { X: value })).toBe(!["", "false", "0"].includes(value));
      }),
    );
  });

  test("any text either parses or gives an error with an offset inside it; it never throws", () => {
    const fragments = fc.constantFrom(
      "${",
      "}",
      "A",
      "(",
      ")",
      "==",
      "=",
      "!",
      "&&",
      "&",
      "'",
      '"',
      "\\",
      "1",
      ".",
      "-",
      " ",
      "true",
    );
    const text = fc.oneof(
      fc.string(),
      fc.array(fragments, { maxLength: 20 }).map((parts) => parts.join("")),
    );
    fc.assert(
      fc.property(text, (source) => {
        const result = parseExpression(source);
        if ("error" in result) {
          expect(result.error.offset).toBeGreaterThanOrEqual(0);
          expect(result.error.offset).toBeLessThanOrEqual(source.length);
        }
      }),
      { numRuns: 2000 },
    );
  });
});
