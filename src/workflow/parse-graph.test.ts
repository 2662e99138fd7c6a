import { describe, expect, test } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { isStepGraph } from "./model.js";

const step = (name: string, extra = "") =>
  `  - name: ${name}\n    action: cmd.run\n    args: {cmd: "true"}\n${extra}`;

describe("depends", () => {
  test("one step with depends makes the file a graph; none keeps file order", () => {
    expect(isStepGraph(valid(`name: w\nsteps:\n${step("a")}${step("b")}`))).toBe(false);
    const graph = valid(`name: w\nsteps:\n${step("a")}${step("b", "    depends: [a]\n")}`);
    expect(isStepGraph(graph)).toBe(true);
    expect(graph.steps[1]?.depends).toEqual([{ step: "a", pos: { line: 9, col: 15 } }]);
  });

  test("depends: [] marks a step that waits for nothing, and makes the file a graph", () => {
    expect(isStepGraph(valid(`name: w\nsteps:\n${step("a", "    depends: []\n")}`))).toBe(true);
  });

  test("an unknown name is reported where it is written, with the step it most likely means", () => {
    expect(problems(`name: w\nsteps:\n${step("build")}${step("test", "    depends: [buld]\n")}`)).toEqual([
      'wf.yaml:9:15: step "test" depends on "buld", which is not a step of this file (hint: did you mean "build"?)',
    ]);
  });

  test("a cycle is spelled out from its first step, at the depends that closes it", () => {
    const text = `name: w
steps:
${step("a", "    depends: [b]\n")}${step("b", "    depends: [c]\n")}${step("c", "    depends: [a]\n")}${step("d", "    depends: [a]\n")}`;
    expect(problems(text)).toEqual([
      "wf.yaml:6:15: steps depend on each other in a cycle: a -> b -> c -> a (hint: a step waits for the steps it depends on; remove one of these depends)",
    ]);
  });

  test("a cycle of 10,000 steps names its first 20 and how many more, not all of them", () => {
    const count = 10_000;
    const text = `name: w\nsteps:\n${Array.from({ length: count }, (_, i) => step(`s${i}`, `    depends: [s${(i + 1) % count}]\n`)).join("")}`;
    const [problem, ...rest] = problems(text);
    expect(rest).toEqual([]);
    expect(problem).toContain("s0 -> s1 -> s2");
    expect(problem).toContain("-> s19 -> ... (9980 more steps) -> s0 (hint:");
    expect(problem?.length).toBeLessThan(400);
  });

  test("a step that depends on itself is a cycle of one", () => {
    expect(problems(`name: w\nsteps:\n${step("a", "    depends: [a]\n")}`)).toEqual([
      "wf.yaml:6:15: steps depend on each other in a cycle: a -> a (hint: a step waits for the steps it depends on; remove one of these depends)",
    ]);
  });

  test("playbook steps take depends too", () => {
    const workflow = valid(`name: w
steps:
  - {name: a, command: "true"}
  - {name: b, command: "true", depends: [a]}
`);
    expect(workflow.steps[1]?.depends?.map((d) => d.step)).toEqual(["a"]);
  });
});

describe("max_parallel", () => {
  test.each([
    ["0", "max_parallel must be a positive integer, got 0"],
    ["1.5", "max_parallel must be a positive integer, got 1.5"],
    ["257", "max_parallel must be at most 256, got 257"],
    ['"4"', 'max_parallel must be a positive integer, got "4"'],
  ])("max_parallel: %s is refused", (value, message) => {
    const [line] = problems(`name: w\nmax_parallel: ${value}\nsteps:\n${step("a")}`);
    expect(line).toContain(`wf.yaml:2:15: ${message}`);
  });

  test("1 and 256 are accepted; absent, the workflow does not set it", () => {
    expect(valid(`name: w\nmax_parallel: 256\nsteps:\n${step("a")}`).maxParallel).toBe(256);
    expect(valid(`name: w\nsteps:\n${step("a")}`)).not.toHaveProperty("maxParallel");
  });
});

describe("matrix", () => {
  test("each combination becomes an instance named after its values", () => {
    const workflow = valid(`name: w
steps:
${step("test", '    matrix: {NODE: ["18", "20"], OS: [a, b], exclude: [{NODE: "20", OS: b}], include: [{NODE: "22", OS: c}]}\n')}`);
    expect(workflow.steps[0]?.matrix).toEqual({
      failFast: false,
      instances: [
        { name: "test (NODE=18, OS=a)", vars: { NODE: "18", OS: "a" } },
        { name: "test (NODE=18, OS=b)", vars: { NODE: "18", OS: "b" } },
        { name: "test (NODE=20, OS=a)", vars: { NODE: "20", OS: "a" } },
        { name: "test (NODE=22, OS=c)", vars: { NODE: "22", OS: "c" } },
      ],
    });
  });

  test("a 10,000-combination matrix is refused at once, saying the limit", () => {
    const values = `[${Array.from({ length: 100 }, (_, i) => i).join(", ")}]`;
    const { value: found, cpuMs } = cpuTimed(() =>
      problems(`name: w\nsteps:\n${step("test", `    matrix: {A: ${values}, B: ${values}}\n`)}`),
    );
    expect(cpuMs).toBeLessThan(cpuPacedMs(1000));
    expect(found).toEqual([
      'wf.yaml:6:13: matrix of step "test" makes more than 256 combinations; a matrix may make at most 256 (hint: split the step into several, or leave combinations out with exclude:)',
    ]);
  });

  test("a matrix past any walk names its size", () => {
    const values = `[${Array.from({ length: 300 }, (_, i) => i).join(", ")}]`;
    expect(problems(`name: w\nsteps:\n${step("t", `    matrix: {A: ${values}, B: ${values}}\n`)}`)).toEqual([
      'wf.yaml:6:13: matrix of step "t" makes 90000 combinations (300 x 300); a matrix may make at most 256 (hint: split the step into several, or leave combinations out with exclude:)',
    ]);
  });

  test("an exclude naming no axis, or a value an axis lacks, is a typo", () => {
    const found = problems(`name: w
steps:
${step("t", "    matrix:\n      OS: [linux, mac]\n      exclude:\n        - {OS: macos}\n        - {OZ: mac}\n")}`);
    expect(found).toEqual([
      'wf.yaml:9:11: exclude of matrix of step "t": OS=macos is not a value of OS (hint: values of OS: linux, mac)',
      'wf.yaml:10:11: exclude of matrix of step "t" names "OZ", which is not an axis of the matrix (hint: did you mean "OS"?)',
    ]);
  });

  test("an empty axis, a repeated value and a bad axis name are refused", () => {
    expect(problems(`name: w\nsteps:\n${step("t", "    matrix: {A: []}\n")}`)).toEqual([
      'wf.yaml:6:17: A of matrix of step "t" is empty (hint: give the axis at least one value, or remove it)',
    ]);
    expect(problems(`name: w\nsteps:\n${step("t", "    matrix: {A: [x, x]}\n")}`)).toEqual([
      'wf.yaml:6:21: A of matrix of step "t" lists "x" twice',
    ]);
    expect(problems(`name: w\nsteps:\n${step("t", '    matrix: {"a-b": [x]}\n')}`)[0]).toContain(
      'wf.yaml:6:14: "a-b" in matrix of step "t" is not a valid variable name',
    );
  });

  test("fail_fast belongs to a matrix step", () => {
    expect(problems(`name: w\nsteps:\n${step("t", "    fail_fast: true\n")}`)).toEqual([
      'wf.yaml:6:5: fail_fast of step "t" applies to a matrix step: it cancels the other combinations when one fails (hint: to let the run go on after this step fails, write continue_on_error: true)',
    ]);
    const workflow = valid(`name: w\nsteps:\n${step("t", "    matrix: {A: [x]}\n    fail_fast: true\n")}`);
    expect(workflow.steps[0]?.matrix?.failFast).toBe(true);
  });

  test("a combination may not take another step's name", () => {
    const text = `name: w\nsteps:\n${step("t", "    matrix: {A: [x]}\n")}${step('"t (A=x)"')}`;
    expect(problems(text)).toEqual([
      'wf.yaml:3:5: matrix of step "t" names a combination "t (A=x)", as another step is named',
    ]);
  });

  test("playbook steps have no matrix or rollback: they point at the action form", () => {
    const found = problems(`name: w\nsteps:\n  - {name: a, command: "true", matrix: {A: [x]}}\n`);
    expect(found[0]).toContain('unknown key "matrix" in step "a"');
    expect(found[0]).toContain("use the action form");
  });
});

describe("rollback", () => {
  test("takes an action and args, read like a step's", () => {
    const workflow = valid(`name: w
steps:
${step("deploy", "    rollback:\n      action: shell.run\n      args: {script: 'echo undo', env: {K: v}}\n")}`);
    expect(workflow.steps[0]?.rollback).toEqual({
      action: "shell.run",
      script: "echo undo",
      shell: "bash",
      env: { K: "v" },
    });
  });

  test("an unknown action or a missing script is reported where it is", () => {
    expect(
      problems(`name: w\nsteps:\n${step("d", "    rollback: {action: shell.runn, args: {script: x}}\n")}`),
    ).toEqual([
      'wf.yaml:6:24: unknown action "shell.runn" in rollback of step "d" (hint: did you mean "shell.run"? valid actions: cmd.run, shell.run)',
    ]);
    expect(problems(`name: w\nsteps:\n${step("d", "    rollback: {action: cmd.run, args: {}}\n")}`)).toEqual([
      'wf.yaml:6:33: args of rollback of step "d" has no cmd (hint: add cmd: the lines to run)',
    ]);
  });
});
