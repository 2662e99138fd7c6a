import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { inputValueProblem } from "./parse-inputs.js";

const withInputs = (inputs: string) =>
  `name: w\ninputs:\n${inputs}\nsteps:\n  - {name: a, action: cmd.run, args: {cmd: "echo $HOOK_REF"}}\n`;

describe("inputs:", () => {
  it("declares typed, capped inputs whose defaults are variables of the workflow", () => {
    const { workflow, diagnostics } = parseWorkflow(
      withInputs(
        "  HOOK_REF: {type: string, max_length: 20, default: main}\n  HOOK_PR: {type: integer}\n  HOOK_ANY:",
      ),
      "w.yaml",
    );
    expect(diagnostics).toEqual([]);
    expect(workflow?.inputs).toEqual({
      HOOK_REF: { type: "string", maxLength: 20, default: "main" },
      HOOK_PR: { type: "integer", maxLength: 1024, default: "" },
      HOOK_ANY: { type: "string", maxLength: 1024, default: "" },
    });
    expect(workflow?.vars).toMatchObject({ HOOK_REF: "main", HOOK_PR: "", HOOK_ANY: "" });
  });

  it("refuses, each at its line and column, a name without the prefix, an unknown type, a cap too large and a bad default", () => {
    const { diagnostics } = parseWorkflow(
      withInputs(
        "  MAKEFLAGS: {type: string}\n  HOOK_A: {type: text}\n  HOOK_B: {max_length: 70000}\n  HOOK_C: {type: integer, default: x}",
      ),
      "w.yaml",
    );
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([
      '3:3 input "MAKEFLAGS" must be named HOOK_ or INPUT_ and capitals, digits or _',
      '4:18 type of inputs.HOOK_A must be one of string, integer, number, boolean, choice, got "text"',
      "5:24 max_length of inputs.HOOK_B is 70000; at most 65536",
      "6:36 default of inputs.HOOK_C is not an integer",
    ]);
    expect(diagnostics[0]?.hint).toContain("call it HOOK_MAKEFLAGS");
  });

  it("checks a value against its input's type and length", () => {
    const string = { type: "string" as const, maxLength: 3, default: "" };
    expect(inputValueProblem(string, "abc")).toBeUndefined();
    expect(inputValueProblem(string, "abcd")).toBe("is longer than its max_length of 3");
    expect(inputValueProblem({ ...string, type: "integer", maxLength: 99 }, "-12")).toBeUndefined();
    expect(inputValueProblem({ ...string, type: "integer", maxLength: 99 }, "1e3")).toBe("is not an integer");
    expect(inputValueProblem({ ...string, type: "boolean", maxLength: 99 }, "yes")).toBe(
      "is not true or false",
    );
  });
});
