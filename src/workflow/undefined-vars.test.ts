// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { undefinedVariables } from "./undefined-vars.js";

function check(yaml: string, given: Record<string, string> = {}, environment: Record<string, string> = {}) {
  const { workflow, diagnostics } = parseWorkflow(yaml, "flow.yaml");
  if (!workflow) throw new Error(diagnostics.map((d) => d.message).join("; "));
  return undefinedVariables(workflow, given, environment).map((variable) => variable.name);
}

const step = (script: string, extra = "") =>
  `name: t\n${extra}steps:\n  - name: s\n    action: shell.run\n    args:\n      script: |\n${script
    .split("\n")
    .map((line) => `        ${line}`)
    .join("\n")}\n`;

describe("undefinedVariables", () => {
  it("finds a ${NAME} nothing defines and suggests the close one", () => {
    const { workflow } = parseWorkflow(step("echo ${TOPIK}", "vars:\n  TOPIC: x\n"), "flow.yaml");
    const found = undefinedVariables(workflow as NonNullable<typeof workflow>, {}, {});
    expect(found).toEqual([expect.objectContaining({ name: "TOPIK", step: "s", didYouMean: "TOPIC" })]);
  });

  it("takes the axes and include values of a matrix step as defined", () => {
    const yaml = `name: t
steps:
  - name: s
    matrix: {NODE: ["18"], include: [{EXTRA: x}]}
    action: shell.run
    args: {script: 'echo \${NODE} \${EXTRA} \${OTHER}'}
`;
    expect(check(yaml)).toEqual(["OTHER"]);
  });

  it("takes the properties of an agent step's output_schema as its exports", () => {
    const yaml = `name: t
steps:
  - name: ask
    action: agent.run
    args:
      agent: openai
      prompt: rate it
      output_schema: {type: object, properties: {severity: {type: string}}}
  - name: s
    action: shell.run
    when: \${severity} == "high"
    args: {script: 'echo \${severity} \${summary}'}
`;
    expect(check(yaml)).toEqual(["summary"]);
  });

  it("takes vars, --var, env, secrets and the environment as sources", () => {
    expect(
      check(
        step("echo ${A} ${B} ${C} ${D} ${E}", "vars:\n  A: 1\nenv:\n  C: 3\nsecrets: [D]\n"),
        { B: "2" },
        { E: "5" },
      ),
    ).toEqual([]);
  });

  it("takes what steps export and what a script sets itself", () => {
    const script =
      'echo "OUT=1" >> "$RUNYARD_OUTPUT"\necho BOPS_EXPORT:EXP=2\nX=1\nfor f in a; do echo ${f}; done\nread -r LINE\necho ${X} ${OUT} ${EXP} ${LINE} ${RUNYARD_HOST}';
    expect(check(step(script))).toEqual([]);
  });

  it("leaves ${NAME:-default} alone: its author expects it may be unset", () => {
    expect(check(step("echo ${MAYBE:-none} ${OTHER:+x}"))).toEqual([]);
  });

  it("reads when expressions too", () => {
    const yaml =
      'name: t\nsteps:\n  - name: s\n    when: ${GO} == "yes"\n    action: cmd.run\n    args:\n      cmd: echo hi\n';
    expect(check(yaml)).toEqual(["GO"]);
  });
});
