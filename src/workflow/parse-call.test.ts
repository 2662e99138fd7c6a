import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { inputValueProblem } from "./parse-inputs.js";

describe("workflow.call steps", () => {
  it("reads the workflow, version and inputs, each input's position kept", () => {
    const { workflow, diagnostics } = parseWorkflow(
      "name: w\nsteps:\n  - name: ship\n    action: workflow.call\n    args:\n      workflow: deploy\n      version: 2\n      inputs: {INPUT_ENV: staging}\n",
      "w.yaml",
    );
    expect(diagnostics).toEqual([]);
    expect(workflow?.steps[0]).toMatchObject({
      action: "workflow.call",
      targets: ["server"],
      call: {
        workflow: "deploy",
        version: 2,
        inputs: { INPUT_ENV: "staging" },
        inputsPos: { INPUT_ENV: { line: 8, col: 27 } },
      },
    });
  });

  it("refuses host keys, a missing workflow and a bad name at their line and column", () => {
    const { diagnostics } = parseWorkflow(
      "name: w\nsteps:\n  - name: a\n    action: workflow.call\n    targets: [local]\n    args: {inputs: {}}\n  - name: b\n    action: workflow.call\n    args: {workflow: ../etc}\n",
      "w.yaml",
    );
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([
      '5:5 unknown key "targets" in step "a"',
      '6:5 args of step "a" has no workflow',
      '9:22 workflow of step "b": "../etc" is not a saved workflow\'s name',
    ]);
  });
});

describe("a called workflow's outputs", () => {
  it("are never named as a setting: the caller's step would export them", () => {
    const { diagnostics } = parseWorkflow(
      "name: w\noutputs:\n  PATH: /tmp/bin\n  LD_PRELOAD: x.so\n  REPORT_PATH: ok\nsteps:\n  - {name: s, action: cmd.run, args: {cmd: 'true'}}\n",
      "w.yaml",
    );
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([
      expect.stringMatching(
        /^3:3 outputs: PATH would let a run of this workflow, in the step that calls it, set PATH: PATH is a name programs read as a setting \(which program a command name runs/,
      ),
      expect.stringMatching(
        /^4:3 outputs: LD_PRELOAD would let .* LD_PRELOAD is a name programs read as a setting \(the dynamic loader/,
      ),
    ]);
    expect(diagnostics[0]?.hint).toMatch(/another name \(e\.g\. MY_PATH\).*export PATH="\$MY_PATH"/);
  });
});

describe("typed inputs", () => {
  it("declares number, choice with options and required inputs", () => {
    const { workflow, diagnostics } = parseWorkflow(
      "name: w\ninputs:\n  INPUT_ENV: {type: choice, options: [a, b], required: true}\n  INPUT_N: {type: number, default: '1.5'}\nsteps:\n  - {name: s, action: cmd.run, args: {cmd: 'true'}}\n",
      "w.yaml",
    );
    expect(diagnostics).toEqual([]);
    const env = workflow!.inputs!.INPUT_ENV!;
    expect(env).toMatchObject({ type: "choice", options: ["a", "b"], required: true });
    expect(inputValueProblem(env, "")).toBe("is required and empty");
    expect(inputValueProblem(env, "c")).toBe("is not one of its options (a, b)");
    expect(inputValueProblem(workflow!.inputs!.INPUT_N!, "x")).toBe("is not a number");
    expect(inputValueProblem(workflow!.inputs!.INPUT_N!, "-2.25")).toBeUndefined();
  });

  it("refuses a choice without options and options on another type", () => {
    const { diagnostics } = parseWorkflow(
      "name: w\ninputs:\n  INPUT_A: {type: choice}\n  INPUT_B: {type: string, options: [x]}\nsteps:\n  - {name: s, action: cmd.run, args: {cmd: 'true'}}\n",
      "w.yaml",
    );
    expect(diagnostics.map((d) => `${d.line}:${d.col} ${d.message}`)).toEqual([
      "3:19 inputs.INPUT_A is a choice with no options",
      "4:27 inputs.INPUT_B has options but is of type string",
    ]);
  });
});
