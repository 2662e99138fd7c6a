// biome-ignore-all lint/suspicious/noTemplateCurlyInString: ${VAR} in these strings is workflow syntax, not a template.
import { readFileSync } from "node:fs";
import { describe, expect, test } from "vitest";
import { cpuPacedMs, cpuTimed } from "../../test/helpers/machine-pace.js";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { formatDiagnostic } from "./model.js";
import { parseWorkflow } from "./parse.js";

function fixture(name: string): string {
  return readFileSync(new URL(`../../test/fixtures/workflows/${name}`, import.meta.url), "utf8");
}

const oneStep = (step: string) => `name: w
steps:
  - name: build
${step}`;

describe("the compatibility surfaces' own files", () => {
  test("the workflow format's basic structure loads: a host with an address is an agent-server", () => {
    const workflow = valid(fixture("seed-002-structure.yaml"));
    expect(workflow.version).toBe("v0.1");
    expect(workflow.hosts).toEqual({ local: { kind: "direct", address: "http://127.0.0.1:7072" } });
    expect(workflow.steps[0]).toMatchObject({
      name: "hello",
      targets: ["local"],
      action: "cmd.run",
      script: 'echo "hello"\n',
    });
  });

  test("the workflow format guide's snippets load together", () => {
    const workflow = valid(fixture("seed-002-guide.yaml"));
    expect(workflow.steps.map((step) => step.name)).toEqual([
      "cmd-run",
      "shell-run",
      "export",
      "step-1",
      "conditional",
      "limited",
    ]);
    expect(workflow.steps[2]).toMatchObject({ action: "shell.run", exportVars: true });
    expect(workflow.steps[3]!.expectVars).toEqual(["OK"]);
    expect(workflow.steps[4]!.when?.source).toBe('${OK} == "true" && ${COUNT} > 1');
    expect(workflow.steps[5]).toMatchObject({ maxOutputBytes: 2048, outputPath: "/tmp/runner-artifacts" });
  });

  test("the workflow format's expect_vars example, with no inventory, runs on the implicit local host", () => {
    const workflow = valid(fixture("seed-002-expect-vars.yaml"), "examples/expect.yaml");
    expect(workflow.name).toBe("expect");
    expect(workflow.hosts).toEqual({ local: { kind: "local" } });
    expect(workflow.steps[0]!.targets).toEqual(["local"]);
  });

  test("the playbook format's backend-task playbook loads as cmd.run steps", () => {
    const workflow = valid(fixture("seed-003-backend-task.yaml"));
    expect(workflow.name).toBe("Backend Task Playbook");
    const [install, lint, unit] = workflow.steps;
    expect(install).toMatchObject({
      action: "cmd.run",
      script: "npm install",
      targets: ["local"],
      timeoutSeconds: 300,
      retryCount: 2,
      continueOnError: false,
    });
    expect(lint).toMatchObject({ script: "npm run lint", continueOnError: true });
    expect(lint!.when?.source).toBe("lint_enabled == true");
    expect(unit).toMatchObject({ script: "npm test", timeoutSeconds: 600, continueOnError: false });
  });
});

test("every key of the workflow form lands in the Workflow", () => {
  expect(valid(fixture("all-fields.yaml"), "all-fields.yaml")).toEqual({
    version: "v0.1",
    name: "demo",
    file: "all-fields.yaml",
    env: { A: "1" },
    vars: { COUNT: "3" },
    secrets: ["DB_URL"],
    hosts: {
      local: { kind: "local" },
      remote: { kind: "direct", address: "http://127.0.0.1:7072", token: "t" },
      builders: { kind: "runner", group: "linux", labels: ["docker"] },
    },
    notify: [{ url: "http://127.0.0.1:9000/hook", secret: "s", retry: 3, delayMs: 2000 }],
    steps: [
      {
        name: "hello",
        targets: ["local"],
        action: "cmd.run",
        script: "echo hello\n",
        shell: "sh",
        env: { K: "v" },
        cwd: "/tmp",
        cwdPos: { line: 27, col: 7 },
        exportVars: true,
        maxOutputBytes: 2048,
        outputPath: "/tmp/runner-artifacts",
        when: { source: '${OK} == "true" && ${COUNT} > 1', expr: expect.objectContaining({ type: "and" }) },
        expectVars: ["OK"],
        continueOnError: false,
        timeoutSeconds: 30,
        retryCount: 2,
        retryDelaySeconds: 1,
        pos: { line: 18, col: 5 },
      },
      {
        name: "everywhere",
        targets: ["remote", "builders"],
        action: "shell.run",
        script: "echo everywhere",
        shell: "bash",
        env: {},
        exportVars: false,
        expectVars: [],
        continueOnError: true,
        timeoutSeconds: 0.5,
        retryCount: 0,
        retryDelaySeconds: 1,
        pos: { line: 37, col: 5 },
      },
    ],
  });
});

describe("defaults and shorthands", () => {
  test("a step without targets runs on the only inventory host", () => {
    const workflow = valid(`name: w
inventory:
  hosts:
    box: {address: "https://box.example:7072"}
steps:
  - name: a
    action: cmd.run
    args: {cmd: "true"}
`);
    expect(workflow.steps[0]!.targets).toEqual(["box"]);
  });

  test("targets may be one string instead of a list", () => {
    const workflow = valid(`name: w
inventory: {hosts: {a: {}, b: {}}}
steps:
  - {name: s, targets: b, action: cmd.run, args: {cmd: "true"}}
`);
    expect(workflow.steps[0]!.targets).toEqual(["b"]);
  });

  test("a host written as nothing or {} is this machine; {group, labels} is any matching runner", () => {
    const workflow = valid(`name: w
inventory:
  hosts:
    empty:
    braces: {}
    labelled: {labels: [gpu, linux]}
    grouped: {group: builders}
steps:
  - {name: s, targets: [empty], action: cmd.run, args: {cmd: "true"}}
`);
    expect(workflow.hosts).toEqual({
      empty: { kind: "local" },
      braces: { kind: "local" },
      labelled: { kind: "runner", labels: ["gpu", "linux"] },
      grouped: { kind: "runner", group: "builders", labels: [] },
    });
  });

  test("a step's defaults: bash, no env, no retries, one second before the first retry, stop on failure", () => {
    const step = valid(
      oneStep(`    action: shell.run
    args: {script: "true"}
`),
    ).steps[0]!;
    expect(step).toMatchObject({
      shell: "bash",
      env: {},
      exportVars: false,
      expectVars: [],
      continueOnError: false,
      retryCount: 0,
      retryDelaySeconds: 1,
    });
    expect(step).not.toHaveProperty("timeoutSeconds");
    expect(step).not.toHaveProperty("when");
  });

  test("cmd given as a list becomes one line per item", () => {
    const step = valid(
      oneStep(`    action: cmd.run
    args:
      cmd: [make, make test]
`),
    ).steps[0]!;
    expect(step.script).toBe("make\nmake test");
  });

  test("env and vars values are taken as written: numbers and booleans become their text", () => {
    const workflow = valid(`name: w
env: {PORT: 8080, DEBUG: true, RATIO: 1.50, EMPTY: }
vars: {COUNT: 3}
steps:
  - {name: s, action: cmd.run, args: {cmd: "true"}}
`);
    expect(workflow.env).toEqual({ PORT: "8080", DEBUG: "true", RATIO: "1.50", EMPTY: "" });
    expect(workflow.vars).toEqual({ COUNT: "3" });
  });

  test("notify may be a single URL, with a retry of 2 and a delay of 500 ms", () => {
    const workflow = valid(`name: w
notify: http://127.0.0.1:9000/hook
steps:
  - {name: s, action: cmd.run, args: {cmd: "true"}}
`);
    expect(workflow.notify).toEqual([{ url: "http://127.0.0.1:9000/hook", retry: 2, delayMs: 500 }]);
  });

  test("a notify delay is milliseconds as a number, or a duration with ms, s or m", () => {
    const workflow = valid(`name: w
notify:
  - {url: "http://a/hook", delay: 250}
  - {url: "http://b/hook", delay: 500ms}
  - {url: "http://c/hook", delay: 1.5s}
  - {url: "http://d/hook", delay: 1m}
steps:
  - {name: s, action: cmd.run, args: {cmd: "true"}}
`);
    expect(workflow.notify.map((target) => target.delayMs)).toEqual([250, 500, 1500, 60_000]);
  });

  test("YAML anchors and aliases can share values between steps", () => {
    const workflow = valid(`name: w
steps:
  - name: a
    action: cmd.run
    args: {cmd: "true", env: &common {REGION: eu}}
  - name: b
    action: cmd.run
    args: {cmd: "true", env: *common}
`);
    expect(workflow.steps[1]!.env).toEqual({ REGION: "eu" });
  });

  test("a playbook step carries shell, env, cwd and export_vars on the step itself", () => {
    const step = valid(`name: p
description: a playbook
steps:
  - name: build
    description: compiles
    command: make
    shell: sh
    env: {CC: clang}
    cwd: /src
    export_vars: true
    expect_vars: OUT
    targets: local
    retry_delay_seconds: 0
`).steps[0]!;
    expect(step).toMatchObject({
      action: "cmd.run",
      script: "make",
      shell: "sh",
      env: { CC: "clang" },
      cwd: "/src",
      exportVars: true,
      expectVars: ["OUT"],
      targets: ["local"],
      retryDelaySeconds: 0,
    });
  });

  test("a workflow without a name is named after its file", () => {
    expect(valid(`steps: [{name: s, command: "true"}]`, "ci/deploy.yml").name).toBe("deploy");
  });
});

describe("problems are reported as file:line:col with a hint", () => {
  test("a YAML syntax error is reported where the parser noticed it", () => {
    expect(
      problems(`name: w
steps: [
`),
    ).toEqual([
      "wf.yaml:3:1: YAML syntax: flow sequence in block collection must be sufficiently indented and end with a ] (hint: check the indentation: items of one mapping or list line up)",
    ]);
  });

  test("a key written twice is a YAML error", () => {
    expect(
      problems(`name: a
name: b
steps: []
`),
    ).toEqual([
      "wf.yaml:2:1: YAML syntax: map keys must be unique (hint: each key may appear once in a mapping)",
    ]);
  });

  test("a condition that starts with a quoted string is told to quote the whole value", () => {
    expect(
      problems(
        oneStep(`    command: make
    condition: "\${A}" == "x"
`),
      ),
    ).toEqual([
      `wf.yaml:5:23: YAML syntax: unexpected scalar at node end (hint: a value that starts with a quote ends at the closing quote; quote all of it: when: '"\${A}" == "x"')`,
    ]);
  });

  test("an alias without its anchor is refused", () => {
    expect(
      problems(`name: w
env: *common
steps: [{name: s, command: "true"}]
`),
    ).toEqual(["wf.yaml:2:6: alias *common has no anchor &common before it"]);
  });

  test("a file that is a list, not a mapping, is refused", () => {
    expect(problems("- name: a\n")).toEqual([
      "wf.yaml:1:1: a workflow file must be a mapping with name and steps (hint: start with `name: NAME` and a `steps:` list)",
    ]);
  });

  test("an unknown key close to a valid one gets a did-you-mean", () => {
    expect(
      problems(
        oneStep(`    targts: [local]
    action: cmd.run
    args: {cmd: "true"}
`),
      ),
    ).toEqual(['wf.yaml:4:5: unknown key "targts" in step "build" (hint: did you mean "targets"?)']);
  });

  test("an unknown key close to nothing gets the list of valid keys", () => {
    expect(
      problems(`name: w
owner: me
steps: [{name: s, command: "true"}]
`),
    ).toEqual([
      'wf.yaml:2:1: unknown key "owner" at the top level (hint: valid keys: version, name, description, env, vars, secrets, inventory, notify, max_parallel, steps, concurrency, schedule, inputs, timeout, outputs, on)',
    ]);
  });

  test("unknown keys are found in hosts, args and notify too", () => {
    expect(
      problems(`name: w
inventory:
  hosts:
    web: {adress: "http://web:7072"}
notify: {url: "http://hook", secrett: x}
steps:
  - name: s
    action: cmd.run
    args: {cmd: "true", cwdd: /tmp}
`),
    ).toEqual([
      'wf.yaml:4:11: unknown key "adress" in host "web" (hint: did you mean "address"?)',
      'wf.yaml:5:30: unknown key "secrett" in notify (hint: did you mean "secret"?)',
      'wf.yaml:9:25: unknown key "cwdd" in args of step "s" (hint: did you mean "cwd"?)',
    ]);
  });

  test("an args key written on the step is pointed back under args", () => {
    expect(
      problems(
        oneStep(`    action: cmd.run
    env: {A: "1"}
    args: {cmd: "true"}
`),
      ),
    ).toEqual(['wf.yaml:5:5: unknown key "env" in step "build" (hint: "env" goes under args)']);
  });

  test("an unknown action lists the valid ones", () => {
    expect(
      problems(
        oneStep(`    action: shell.rn
    args: {script: "true"}
`),
      ),
    ).toEqual([
      'wf.yaml:4:13: unknown action "shell.rn" in step "build" (hint: did you mean "shell.run"? valid actions: cmd.run, shell.run, approval, workflow.call, agent.run)',
    ]);
  });

  test("a target that is not in the inventory names the step and the host, and lists the hosts", () => {
    expect(
      problems(`name: w
inventory:
  hosts:
    web-1: {}
    db: {}
steps:
  - name: deploy
    targets: [web-1, web-2]
    action: cmd.run
    args: {cmd: "true"}
`),
    ).toEqual([
      'wf.yaml:8:22: step "deploy" targets host "web-2", which is not in inventory.hosts (hint: did you mean "web-1"? defined hosts: web-1, db)',
    ]);
  });

  test("without an inventory, a target other than local is refused", () => {
    expect(problems(`steps: [{name: s, targets: [web], command: "true"}]`)).toEqual([
      'wf.yaml:1:29: step "s" targets host "web", but the workflow has no inventory (hint: without inventory the only host is "local"; define other hosts under inventory.hosts)',
    ]);
  });

  test("a step with no targets among several hosts must say which", () => {
    expect(
      problems(`name: w
inventory: {hosts: {a: {}, b: {}}}
steps:
  - {name: s, command: "true"}
`),
    ).toEqual([
      'wf.yaml:4:5: step "s" has no targets and the inventory has 2 hosts (hint: add targets: [a, b] or the hosts it should run on)',
    ]);
  });

  test("a duplicate step name says where the first one is", () => {
    expect(
      problems(`name: w
steps:
  - name: build
    command: make
  - name: build
    command: make test
`),
    ).toEqual(['wf.yaml:5:5: duplicate step name "build": the first is at line 3']);
  });

  test("a step without a name is refused", () => {
    expect(
      problems(`name: w
steps:
  - command: make
`),
    ).toEqual(["wf.yaml:3:5: step #1 has no name (hint: add name: a short unique name for the step)"]);
  });

  test("a step with neither action nor command is refused", () => {
    expect(
      problems(
        oneStep(`    targets: [local]
`),
      ),
    ).toEqual([
      'wf.yaml:3:5: step "build" has no action (hint: add action: cmd.run with args.cmd, or write it as command: ...)',
    ]);
  });

  test("cmd.run without cmd is refused", () => {
    expect(
      problems(
        oneStep(`    action: cmd.run
    args: {cwd: /tmp}
`),
      ),
    ).toEqual(['wf.yaml:5:5: args of step "build" has no cmd (hint: add cmd: the lines to run)']);
  });

  test("shell.run given cmd is told to use script", () => {
    expect(
      problems(
        oneStep(`    action: shell.run
    args:
      cmd: echo hi
`),
      ),
    ).toEqual([
      'wf.yaml:6:7: unknown key "cmd" in args of step "build" (hint: shell.run takes its script as "script")',
    ]);
  });

  test("cmd.run given script is told to use cmd or shell.run", () => {
    expect(
      problems(
        oneStep(`    action: cmd.run
    args: {script: make}
`),
      ),
    ).toEqual([
      'wf.yaml:5:12: unknown key "script" in args of step "build" (hint: cmd.run takes its lines as "cmd"; use action: shell.run to run "script" as one script)',
    ]);
  });

  test("a step mixing the action form and the playbook form is told to pick one", () => {
    expect(
      problems(
        oneStep(`    action: cmd.run
    command: make
    args: {cmd: make}
`),
      ),
    ).toEqual([
      'wf.yaml:5:5: unknown key "command" in step "build" (hint: a step has either action and args, or command (playbook form), not both)',
    ]);
  });

  test("a playbook step written with when is told its name is condition", () => {
    expect(
      problems(
        oneStep(`    command: make
    when: \${A}
`),
      ),
    ).toEqual([
      'wf.yaml:5:5: unknown key "when" in step "build" (hint: playbook steps write the condition as "condition")',
    ]);
  });

  test("a host with a token but no address is refused", () => {
    expect(
      problems(`name: w
inventory: {hosts: {a: {token: t}}}
steps: [{name: s, command: "true"}]
`),
    ).toEqual(['wf.yaml:2:25: host "a" has a token but no address (hint: add address: http://HOST:PORT)']);
  });

  test("a notify target needs an http(s) url and a readable delay", () => {
    expect(
      problems(`name: w
notify: [{url: "mailto:me@example.com", delay: soon}]
steps: [{name: s, command: "true"}]
`),
    ).toEqual([
      'wf.yaml:2:16: url of notify[0] must be an http(s) URL, got "mailto:me@example.com"',
      'wf.yaml:2:48: delay of notify[0] must be a duration, got "soon" (hint: write "500ms", "2s" or "1m")',
    ]);
  });

  test("values of the wrong type are each reported at the value", () => {
    expect(
      problems(
        oneStep(`    command: make
    retry_count: -1
    timeout_seconds: "ten"
    fail_fast: "yes"
    retry_delay_seconds: -2
`),
      ),
    ).toEqual([
      'wf.yaml:5:18: retry_count of step "build" must be a non-negative integer, got -1',
      'wf.yaml:6:22: timeout_seconds of step "build" must be a positive number, got "ten"',
      'wf.yaml:7:16: fail_fast of step "build" must be true or false, got "yes"',
      'wf.yaml:8:26: retry_delay_seconds of step "build" must be a non-negative number, got -2',
    ]);
  });

  test("continue_on_error must be a boolean, not a word", () => {
    expect(
      problems(
        oneStep(`    action: cmd.run
    args: {cmd: make}
    continue_on_error: "yes"
`),
      ),
    ).toEqual(['wf.yaml:6:24: continue_on_error of step "build" must be true or false, got "yes"']);
  });

  test("a workflow without steps, or with an empty list of them, is refused", () => {
    expect(problems("name: w\n")).toEqual([
      "wf.yaml:1:1: the workflow has no steps (hint: add a `steps:` list; each step has a name and an action)",
    ]);
    expect(problems("name: w\nsteps: []\n")).toEqual([
      "wf.yaml:2:1: steps is empty (hint: add a step with name, action and args)",
    ]);
  });

  test("variable names must be letters, digits and _", () => {
    expect(
      problems(`name: w
vars: {1ST: a}
steps:
  - {name: s, command: "true", expect_vars: [OK, my-var], env: {A.B: x}}
`),
    ).toEqual([
      'wf.yaml:2:8: "1ST" is not a valid variable name (hint: names are letters, digits and _, and do not start with a digit)',
      'wf.yaml:4:50: "my-var" is not a valid variable name (hint: names are letters, digits and _, and do not start with a digit)',
      'wf.yaml:4:65: "A.B" is not a valid variable name (hint: names are letters, digits and _, and do not start with a digit)',
    ]);
  });

  test("a host address must be an http(s) URL", () => {
    expect(
      problems(`name: w
inventory: {hosts: {a: {address: "10.0.0.1:7072"}}}
steps: [{name: s, command: "true"}]
`),
    ).toEqual([
      'wf.yaml:2:34: address of host "a" must be an http(s) URL, got "10.0.0.1:7072" (hint: write it like "http://127.0.0.1:7072")',
    ]);
  });

  test("a host is reached one way: an address or runner labels, not both", () => {
    expect(
      problems(`name: w
inventory: {hosts: {a: {address: "http://a:7072", labels: [x]}}}
steps: [{name: s, command: "true"}]
`),
    ).toEqual([
      'wf.yaml:2:51: host "a" mixes "address" and "labels" (hint: a host is either {address, token} (an agent-server) or {group, labels} (runners of the server))',
    ]);
  });

  test("every problem is reported at once, in file order", () => {
    const found = problems(`name: w
inventory: {hosts: {a: {}}}
steps:
  - name: one
    action: cmd.rn
    args: {cmd: "true"}
  - name: two
    targets: [b]
    command: make
    retry_count: many
  - name: one
    command: make
    condition: \${X} = 1
`);
    expect(found.map((line) => line.split(": ")[0])).toEqual([
      "wf.yaml:5:13",
      "wf.yaml:8:15",
      "wf.yaml:10:18",
      "wf.yaml:11:5",
      "wf.yaml:13:21",
    ]);
  });
});

describe("a bad condition points at the exact column of the fault", () => {
  const conditionProblem = (condition: string) =>
    problems(oneStep(`    command: make\n    condition: ${condition}\n`));

  test("in a plain scalar", () => {
    expect(conditionProblem("ready == f(x)")).toEqual([
      'wf.yaml:5:26: invalid condition in step "build": unexpected "(" at column 11: calls are not allowed (hint: a condition uses ${VAR} or NAME, "strings", numbers, true, false, == != > < >= <=, && || ! and parentheses)',
    ]);
  });

  test("in a double-quoted scalar with escapes", () => {
    const [found] = conditionProblem('"\\"a\\" == a.b"');
    expect(found).toMatch(/^wf\.yaml:5:27: invalid condition in step "build": unexpected "\." at column 9/);
  });

  test("in a single-quoted scalar", () => {
    const [found] = conditionProblem("'${A} & ${B}'");
    expect(found).toMatch(/^wf\.yaml:5:22: .*unexpected "&" at column 6: use "&&"/);
  });

  test("in a block scalar spread over lines", () => {
    const [found] = problems(
      oneStep(`    action: cmd.run
    args: {cmd: make}
    when: |
      \${A} == "x" &&
        \${B} = 3
`),
    );
    expect(found).toMatch(/^wf\.yaml:8:14: invalid when in step "build": unexpected "=" at column 23/);
  });

  test("an empty condition is refused", () => {
    expect(conditionProblem('""')).toEqual([
      'wf.yaml:5:17: invalid condition in step "build": empty expression at column 1: write a condition such as ${OK} == "true" (hint: a condition uses ${VAR} or NAME, "strings", numbers, true, false, == != > < >= <=, && || ! and parentheses)',
    ]);
  });
});

test("a condition may name variables nothing defines", () => {
  const step = valid(oneStep(`    command: make\n    condition: \${NEVER_SET} == ""\n`)).steps[0]!;
  expect(step.when?.source).toBe('${NEVER_SET} == ""');
});

describe("secrets:", () => {
  test("lists names of variables that hold secrets", () => {
    const workflow = valid(`name: w
secrets: [DB_URL, SESSION]
steps: [{name: s, command: "true"}]
`);
    expect(workflow.secrets).toEqual(["DB_URL", "SESSION"]);
    expect(valid(`name: w\nsteps: [{name: s, command: "true"}]\n`).secrets).toEqual([]);
  });

  test("reports a name that is not a variable name, and a value that is not a list, where they are", () => {
    expect(
      problems(`name: w
secrets: [DB_URL, db-url]
steps: [{name: s, command: "true"}]
`),
    ).toEqual([
      'wf.yaml:2:19: "db-url" is not a valid variable name (hint: names are letters, digits and _, and do not start with a digit)',
    ]);
    expect(
      problems(`name: w
secrets: {DB_URL: x}
steps: [{name: s, command: "true"}]
`),
    ).toEqual(["wf.yaml:2:10: secrets must be a list of strings, got a mapping"]);
  });

  test("a misspelt secrets key gets a did-you-mean", () => {
    expect(problems(`name: w\nsecret: [A]\nsteps: [{name: s, command: "true"}]\n`)[0]).toContain(
      'unknown key "secret" at the top level',
    );
  });
});

describe("deeply nested YAML is refused with a position, not a stack overflow", () => {
  test("100,000 unclosed brackets point at the first one too deep", () => {
    expect(problems(`name: w\nsteps: ${"[".repeat(100_000)}`)).toEqual([
      "wf.yaml:2:71: YAML nesting is deeper than 64 levels of lists and mappings (hint: a workflow needs a few levels (steps, a step, its args, env); check for unclosed [ or {)",
    ]);
  });

  test("thousands of nested mappings name the line where the nesting goes too deep", () => {
    // 4.3 MiB of indentation: over the default size limit, so a larger one is given here.
    const text = Array.from({ length: 3000 }, (_, i) => `${" ".repeat(i)}k${i}:`).join("\n");
    const limits = { maxBytes: 8 * 1024 * 1024, maxAliases: 100 };
    expect(parseWorkflow(text, "wf.yaml", limits).diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^wf\.yaml:65:65: YAML nesting is deeper than 64/),
    ]);
  });

  test("nested flow mappings and block lists are caught too", () => {
    expect(problems(`x: ${"{a: ".repeat(50_000)}`)[0]).toMatch(/^wf\.yaml:1:\d+: YAML nesting is deeper/);
    expect(problems("- ".repeat(100_000))[0]).toMatch(/^wf\.yaml:1:\d+: YAML nesting is deeper/);
  });

  test("64 levels are still read", () => {
    const { diagnostics } = parseWorkflow(`name: w\nvars: ${"[".repeat(63)}${"]".repeat(63)}\n`, "wf.yaml");
    expect(diagnostics.map(formatDiagnostic).join("\n")).not.toMatch(/nesting/);
  });
});

describe("YAML aliases and size are bounded before anything reads the workflow", () => {
  const small = { maxBytes: 4096, maxAliases: 5 };

  test("a few aliases within the limits still share values", () => {
    const { workflow, diagnostics } = parseWorkflow(
      `name: w\nvars: {A: &a "one", B: *a, C: *a}\nsteps: [{name: s, command: "true"}]\n`,
      "wf.yaml",
      small,
    );
    expect(diagnostics).toEqual([]);
    expect(workflow?.vars).toEqual({ A: "one", B: "one", C: "one" });
  });

  test("more aliases than the limit are refused at the first alias past it", () => {
    const aliases = Array.from({ length: 7 }, (_, i) => `  V${i}: *a`).join("\n");
    const { workflow, diagnostics } = parseWorkflow(
      `name: w\nvars:\n  A: &a x\n${aliases}\nsteps: [{name: s, command: "true"}]\n`,
      "wf.yaml",
      small,
    );
    expect(workflow).toBeUndefined();
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(
        /^wf\.yaml:9:7: the workflow uses 7 aliases \(\*name\), more than the limit of 5 \(hint: /,
      ),
    ]);
    expect(diagnostics[0]?.limit).toBe(true);
  });

  test("aliases that expand past the size limit are refused at the alias that passes it", () => {
    const big = "x".repeat(1500);
    const { workflow, diagnostics } = parseWorkflow(
      `name: w\nvars:\n  A: &a "${big}"\n  B: *a\n  C: *a\nsteps: [{name: s, command: "true"}]\n`,
      "wf.yaml",
      small,
    );
    expect(workflow).toBeUndefined();
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(
        /^wf\.yaml:5:6: with its aliases expanded the workflow passes 4 KiB at alias \*a /,
      ),
    ]);
  });

  test("nested aliases (a billion laughs) are refused without expanding them", () => {
    const levels = ['a0: &a0 "lol"'];
    for (let i = 1; i <= 9; i++)
      levels.push(
        `a${i}: &a${i} [${Array(9)
          .fill(`*a${i - 1}`)
          .join(", ")}]`,
      );
    const { value, cpuMs } = cpuTimed(() =>
      parseWorkflow(
        `name: w\nx:\n${levels.map((l) => `  ${l}`).join("\n")}\nsteps: [{name: s, command: "true"}]\n`,
        "wf.yaml",
        { maxBytes: 1024 * 1024, maxAliases: 100 },
      ),
    );
    const { workflow, diagnostics } = value;
    expect(workflow).toBeUndefined();
    expect(diagnostics[0]?.message).toMatch(
      /with its aliases expanded the workflow passes 1 MiB at alias \*a/,
    );
    expect(cpuMs).toBeLessThan(cpuPacedMs(1000));
  });

  test("an alias inside the node it names is refused, not followed forever", () => {
    const { diagnostics } = parseWorkflow(
      `name: w\nvars: &v {A: *v}\nsteps: [{name: s, command: "true"}]\n`,
      "wf.yaml",
      small,
    );
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^wf\.yaml:2:14: alias \*v stands for a node that contains it/),
    ]);
  });

  test("a text larger than the limit is refused at the line where it passes it", () => {
    const text = `name: w\nsteps: [{name: s, command: "true"}]\n${"# padding\n".repeat(500)}`;
    const { diagnostics } = parseWorkflow(text, "wf.yaml", small);
    expect(diagnostics.map(formatDiagnostic)).toEqual([
      expect.stringMatching(/^wf\.yaml:\d+:\d+: the workflow is 4\.9 KiB, more than the limit of 4 KiB/),
    ]);
    expect(diagnostics[0]?.limit).toBe(true);
  });
});
