/** `image:` on a step: the image of its pod on a runner with the Kubernetes executor. */
import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { parseWorkflow } from "./parse.js";

describe("a step's image", () => {
  test("is kept on cmd.run, shell.run and playbook steps, and absent where not written", () => {
    const workflow = valid(`name: w
steps:
  - name: build
    image: registry.example.com/team/build:2
    action: cmd.run
    args: {cmd: make}
  - name: script
    image: busybox:1.36
    action: shell.run
    args: {script: "echo hi"}
  - name: playbook
    image: alpine:3.20
    command: "true"
  - name: plain
    command: "true"
`);
    expect(workflow.steps.map((step) => step.image)).toEqual([
      "registry.example.com/team/build:2",
      "busybox:1.36",
      "alpine:3.20",
      undefined,
    ]);
  });

  test("bad values are reported where they are written, with how to write one", () => {
    expect(
      problems(`name: w
steps:
  - name: a
    image: ""
    command: "true"
  - name: b
    image: "busy box"
    command: "true"
  - name: c
    image: [busybox]
    command: "true"
`),
    ).toEqual([
      'wf.yaml:4:12: image of step "a" is empty (hint: write an image reference such as busybox:1.36 or registry.example.com/team/build:2)',
      'wf.yaml:7:12: image of step "b" has white space in it (hint: write an image reference such as busybox:1.36 or registry.example.com/team/build:2)',
      expect.stringMatching(/^wf\.yaml:10:12: image of step "c" must be a string/),
    ]);
  });

  test("a misspelt or misplaced image key says where it goes", () => {
    expect(
      problems(`name: w
steps:
  - name: a
    imag: busybox:1.36
    command: "true"
  - name: b
    action: cmd.run
    args: {cmd: "true", image: busybox:1.36}
`),
    ).toEqual([
      'wf.yaml:4:5: unknown key "imag" in step "a" (hint: did you mean "image"?)',
      'wf.yaml:8:25: unknown key "image" in args of step "b" (hint: "image" goes on the step itself, next to action)',
    ]);
  });

  test("is refused on a host that runs its own image or is an agent-server, and on steps no runner runs in an image", () => {
    expect(
      problems(`name: w
inventory:
  hosts:
    box: {executor: docker, image: busybox:1.36}
    far: {address: "http://10.0.0.2:8089"}
steps:
  - name: a
    targets: [box]
    image: alpine:3.20
    command: "true"
  - name: b
    targets: [far]
    image: alpine:3.20
    command: "true"
  - name: ok
    action: approval
    args: {message: go?, approvers: [alice]}
    image: alpine:3.20
`),
    ).toEqual([
      'wf.yaml:9:5: step "a" sets image, but host "box" runs its steps in containers of its own image (executor: docker) (hint: set the image on host "box" (its image: key), or remove image from the step)',
      'wf.yaml:13:5: step "b" sets image, but host "far" is an agent-server, which runs steps as processes (hint: run the step on runners with the Kubernetes executor (a host with labels: [kubernetes]), or remove image)',
      expect.stringMatching(/^wf\.yaml:18:5: unknown key "image" in step "ok"/),
    ]);
  });

  test("an agent.run step may not name one", () => {
    const { diagnostics } = parseWorkflow(
      `name: w
steps:
  - name: a
    action: agent.run
    image: alpine:3.20
    args: {agent: claude, prompt: hi}
`,
      "wf.yaml",
    );
    expect(diagnostics.map((d) => d.message)).toContain(
      'step "a" is agent.run and sets image: only cmd.run and shell.run steps run in an image',
    );
  });
});
