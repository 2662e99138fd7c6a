import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { fillApprovalInputs } from "./approval-inputs.js";

const gate = (args: string) => `name: release
steps:
  - name: go
    action: approval
    args:
      message: Ship?
      approvers: [ann, bob, role:admin]
${args}`;

describe("an approval's inputs, required approvals, self_approval and wait", () => {
  test("reads a typed form, several approvers, no self-approval and a wait", () => {
    const step = valid(
      gate(`      required: 2
      self_approval: false
      wait: 10m
      inputs:
        REGION: {type: choice, options: [eu, us], required: true}
        REPLICAS: {type: number, default: "3"}
        CANARY: {type: boolean, default: "true"}
        NOTE:
`),
    ).steps[0]!;
    expect(step.approval).toMatchObject({
      required: 2,
      selfApproval: false,
      waitSeconds: 600,
      inputs: [
        { name: "REGION", type: "choice", options: ["eu", "us"], required: true },
        { name: "REPLICAS", type: "number", default: "3", required: false },
        { name: "CANARY", type: "boolean", default: "true", required: false },
        { name: "NOTE", type: "string", required: false },
      ],
    });
  });

  test("an approval without the new keys asks one approval from anyone listed, at once", () => {
    expect(valid(gate("")).steps[0]!.approval).toMatchObject({
      required: 1,
      selfApproval: true,
      waitSeconds: 0,
      inputs: [],
    });
  });

  test("refuses a bad form, more approvals than approvers and a wait past the timeout at line:column", () => {
    const found = problems(`name: release
steps:
  - name: go
    action: approval
    args:
      message: Ship?
      approvers: [ann, bob]
      required: 3
      timeout_seconds: 60
      wait: 2m
      inputs:
        REGION: {type: choice}
        COUNT: {type: integr}
        SIZE: {type: number, default: big}
        1BAD: {}
        LEVEL: {type: string, options: [a]}
`);
    expect(found).toEqual([
      'wf.yaml:8:17: required of step "go" is 3, but only 2 approvers are listed (hint: each approval comes from a different approver: list more approvers (or a role), or require fewer)',
      'wf.yaml:10:13: wait of step "go" (120 s) is not shorter than its timeout_seconds (60 s) (hint: nobody could answer before the step times out: shorten the wait or raise timeout_seconds)',
      'wf.yaml:12:18: inputs of step "go".REGION is a choice without options (hint: add options: [the values to pick from])',
      'wf.yaml:13:23: type of inputs of step "go".COUNT must be one of string, number, boolean, choice, got "integr" (hint: types: string, number, boolean, choice)',
      'wf.yaml:14:39: default of inputs of step "go".SIZE is not a number (write digits, e.g. 3 or 2.5)',
      'wf.yaml:15:9: inputs of step "go": "1BAD" is not a variable name (hint: an input\'s value is exported under its name: use letters, digits and _, not starting with a digit)',
      'wf.yaml:16:31: inputs of step "go".LEVEL has options but is no choice (hint: write type: choice to pick from options)',
    ]);
  });
  test("refuses an input named as a setting: an approver's value would set it for the later steps", () => {
    const found = problems(
      gate(`      inputs:
        BASH_ENV: {type: string}
        https_proxy:
        TARGET_PATH:
`),
    );
    expect(found).toEqual([
      expect.stringMatching(
        /^wf\.yaml:9:9: inputs of step "go": BASH_ENV would let an approver set BASH_ENV: BASH_ENV is a name programs read as a setting \(the shell runs the file .*\(hint: give it another name \(e\.g\. MY_BASH_ENV\)/,
      ),
      expect.stringMatching(
        /^wf\.yaml:10:9: inputs of step "go": https_proxy would let .*proxy.*MY_https_proxy_VALUE/,
      ),
    ]);
  });
});

describe("filling an approval's form", () => {
  const inputs = valid(
    gate(`      inputs:
        REGION: {type: choice, options: [eu, us], required: true}
        REPLICAS: {type: number, default: "3"}
        CANARY: {type: boolean}
`),
  ).steps[0]!.approval!.inputs;

  test("checks each value's type, fills defaults and leaves out what nobody gave", () => {
    expect(fillApprovalInputs(inputs, { REGION: "eu", CANARY: true })).toEqual({
      values: { REGION: "eu", REPLICAS: "3", CANARY: "true" },
      problems: [],
    });
    expect(
      fillApprovalInputs(inputs, { REGION: "mars", REPLICAS: "many", CANARY: "yes", REGOIN: "eu" }).problems,
    ).toEqual([
      'unknown input "REGOIN" (did you mean REGION?); its inputs are REGION, REPLICAS, CANARY',
      'input REGION: "mars" is not one of eu, us',
      'input REPLICAS: "many" is not a number (write digits, e.g. 3 or 2.5)',
      'input CANARY: "yes" is not true or false',
    ]);
    expect(fillApprovalInputs(inputs, {}).problems).toEqual(["input REGION is required (one of eu, us)"]);
  });
});
