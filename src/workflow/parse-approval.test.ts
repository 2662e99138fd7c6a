import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { approvalHost } from "./model.js";

/** A workflow with two hosts, so that a step without targets would be an error elsewhere. */
const gate = (lines: string) => `name: deploy
inventory:
  hosts:
    web1: {}
    web2: {}
steps:
  - name: approve
    action: approval
${lines}`;

describe("action: approval", () => {
  test("reads message, approvers and timeout, and runs once on the server, not on hosts", () => {
    const workflow = valid(
      gate(`    args:
      message: Ship it?
      approvers: [alice, role:admin]
      timeout_seconds: 600
    continue_on_error: true
`),
    );
    expect(workflow.steps[0]).toMatchObject({
      name: "approve",
      action: "approval",
      targets: [approvalHost],
      continueOnError: true,
      approval: { message: "Ship it?", approvers: ["alice", "role:admin"], timeoutSeconds: 600 },
    });
  });

  test("takes depends in a step graph, and refuses a matrix or a rollback", () => {
    const workflow = valid(`name: deploy
steps:
  - name: build
    depends: []
    action: cmd.run
    args: {cmd: make}
  - name: approve
    depends: [build]
    action: approval
    args: {message: ok?, approvers: [role:admin]}
`);
    expect(workflow.steps[1]?.depends?.map((d) => d.step)).toEqual(["build"]);
    const refused = problems(
      gate("    args: {message: ok?, approvers: [role:admin]}\n    matrix: {A: [x, y]}\n"),
    );
    expect(refused[0]).toContain('unknown key "matrix" in step "approve"');
  });

  test("waits a day when timeout_seconds is not given", () => {
    const workflow = valid(gate("    args: {message: ok?, approvers: [role:member]}\n"));
    expect(workflow.steps[0]?.approval?.timeoutSeconds).toBe(86_400);
  });

  test("needs a message and approvers", () => {
    expect(problems(gate("    args: {}\n"))).toEqual([
      'wf.yaml:9:5: args of step "approve" has no message (hint: add message: what the approvers decide)',
      'wf.yaml:9:5: args of step "approve" has no approvers (hint: add approvers: [a username, role:admin or role:member of the run\'s tenant])',
    ]);
    expect(problems(gate(""))[0]).toBe(
      'wf.yaml:7:5: step "approve" has no args (hint: add args: {message: what the approvers decide, approvers: [a username or role:admin]})',
    );
  });

  test("refuses an empty or mistyped approver list, an unknown role and a name listed twice", () => {
    expect(problems(gate("    args: {message: ok?, approvers: []}\n"))).toEqual([
      'wf.yaml:9:37: approvers of step "approve" is empty (hint: name at least one username, role:admin or role:member)',
    ]);
    expect(problems(gate("    args: {message: ok?, approvers: alice}\n"))).toEqual([
      'wf.yaml:9:37: approvers of step "approve" must be a list, e.g. [alice, role:admin]',
    ]);
    expect(problems(gate('    args: {message: ok?, approvers: [role:owner, bob, bob, "a b"]}\n'))).toEqual([
      'wf.yaml:9:38: approvers of step "approve": unknown role "role:owner" (hint: roles: role:admin, role:member)',
      'wf.yaml:9:55: approvers of step "approve" lists "bob" twice',
      'wf.yaml:9:60: approvers of step "approve": "a b" is not a username (hint: a username is 1 to 64 letters, digits and . _ @ -, starting with a letter or digit; or write role:admin or role:member)',
    ]);
  });

  test("refuses a timeout that is not positive or passes 30 days", () => {
    expect(problems(gate("    args: {message: ok?, approvers: [a], timeout_seconds: 0}\n"))).toEqual([
      'wf.yaml:9:59: timeout_seconds of step "approve" must be a positive number, got 0',
    ]);
    expect(problems(gate("    args: {message: ok?, approvers: [a], timeout_seconds: 9999999}\n"))).toEqual([
      'wf.yaml:9:59: timeout_seconds of step "approve" is 9999999, more than 30 days (2592000) (hint: a run waits for an answer 30 days at most)',
    ]);
  });

  test("refuses keys that mean nothing on an approval, each with what to write instead", () => {
    expect(
      problems(
        gate(`    targets: [web1]
    timeout_seconds: 60
    retry_count: 2
    args:
      message: ok?
      approvers: [a]
      approver: b
      cmd: echo hi
`),
      ),
    ).toEqual([
      'wf.yaml:9:5: unknown key "targets" in step "approve" (hint: an approval step runs once, on the server, not on hosts: remove targets)',
      'wf.yaml:10:5: unknown key "timeout_seconds" in step "approve" (hint: an approval\'s wait goes under args: args.timeout_seconds)',
      'wf.yaml:11:5: unknown key "retry_count" in step "approve" (hint: an approval is answered once and never retried: remove it)',
      'wf.yaml:15:7: unknown key "approver" in args of step "approve" (hint: the list of who may answer is "approvers")',
      'wf.yaml:16:7: unknown key "cmd" in args of step "approve" (hint: an approval step runs no command; put commands in a step of their own before or after it)',
    ]);
  });

  test("lists approval among the actions an unknown one is compared with", () => {
    const found = problems(gate("").replace("action: approval", "action: aproval"));
    expect(found).toContain(
      'wf.yaml:8:13: unknown action "aproval" in step "approve" (hint: did you mean "approval"? valid actions: cmd.run, shell.run, approval, workflow.call, agent.run)',
    );
  });
});
