// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { RunyardError } from "../core/errors.js";
import { expandConcurrencyGroup } from "./concurrency-group.js";

const withConcurrency = (concurrency: string) => `name: w
concurrency: ${concurrency}
steps:
  - name: build
    action: cmd.run
    args: {cmd: "true"}
`;

describe("concurrency:", () => {
  test("takes a group and cancel_in_progress", () => {
    const workflow = valid(withConcurrency('{group: "deploy-${ENV}", cancel_in_progress: true}'));
    expect(workflow.concurrency).toEqual({
      group: "deploy-${ENV}",
      cancelInProgress: true,
      pos: { line: 2, col: 14 },
    });
  });

  test("a plain name is the group, and runs queue behind each other", () => {
    expect(valid(withConcurrency("deploy")).concurrency).toMatchObject({
      group: "deploy",
      cancelInProgress: false,
    });
  });

  test("a workflow without it has none", () => {
    expect(valid(withConcurrency('{group: "x"}').replace(/concurrency.*\n/, "")).concurrency).toBeUndefined();
  });

  test("wrong types and keys are reported at their line and column", () => {
    expect(problems(withConcurrency("{group: [a], cancel_in_progress: yes}"))).toEqual([
      "wf.yaml:2:22: concurrency.group must be a string, got a list",
      'wf.yaml:2:47: concurrency.cancel_in_progress must be true or false, got "yes"',
    ]);
    expect(problems(withConcurrency("{group: g, cancel-in-progress: true}"))).toEqual([
      'wf.yaml:2:25: unknown key "cancel-in-progress" in concurrency (hint: write cancel_in_progress, with underscores)',
    ]);
    expect(problems(withConcurrency("{cancel_in_progress: true}"))[0]).toContain(
      "wf.yaml:2:14: concurrency has no group",
    );
    expect(problems(withConcurrency("42"))[0]).toContain(
      "wf.yaml:2:14: concurrency must be a group name or a mapping with group",
    );
    expect(problems(withConcurrency('""'))[0]).toContain("wf.yaml:2:14: concurrency group is empty");
  });

  test("a $ that does not start ${NAME} points at itself", () => {
    expect(problems(withConcurrency('{group: "deploy-$ENV"}'))[0]).toMatch(
      /^wf\.yaml:2:30: concurrency group "deploy-\$ENV": a "\$" must start a variable written \$\{NAME\}/,
    );
  });
});

describe("expanding a group at submit", () => {
  const spec = { group: "deploy-${ENV}-${REGION}", cancelInProgress: false, pos: { line: 2, col: 14 } };

  test("takes the run's values as text, never as shell", () => {
    expect(expandConcurrencyGroup(spec, { ENV: "$(touch /tmp/x)", REGION: "eu; rm -rf /" }, "wf.yaml")).toBe(
      "deploy-$(touch /tmp/x)-eu; rm -rf /",
    );
  });

  test("a variable the run does not set is an error naming it", () => {
    let error: unknown;
    try {
      expandConcurrencyGroup(spec, { ENV: "prod" }, "wf.yaml");
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(RunyardError);
    expect((error as RunyardError).code).toBe("INVALID_INPUT");
    expect((error as RunyardError).message).toBe(
      'wf.yaml:2:14: concurrency group "deploy-${ENV}-${REGION}" uses ${REGION}, which the run does not set',
    );
    expect((error as RunyardError).hint).toContain("--var REGION=");
  });

  test("a group that expands to nothing is refused", () => {
    expect(() => expandConcurrencyGroup({ ...spec, group: "${A}" }, { A: " " }, "wf.yaml")).toThrow(
      /expands to nothing/,
    );
  });
});
