import { describe, expect, it } from "vitest";
import { memberContainersRefusal } from "./member-containers.js";
import { parseWorkflow } from "./parse.js";

function refusal(host: string) {
  const text = `name: t
inventory:
  hosts:
    plain: {}
    box:
${host}steps:
  - name: s
    targets: [box]
    action: cmd.run
    args:
      cmd: "true"
`;
  const { workflow, diagnostics } = parseWorkflow(text, "flow.yaml");
  if (!workflow) throw new Error(JSON.stringify(diagnostics));
  return memberContainersRefusal(workflow);
}

describe("memberContainersRefusal", () => {
  it("refuses a network other than none or host as INVALID_INPUT at the key's line and column", () => {
    const error = refusal("      executor: docker\n      image: busybox:1\n      network: container:bot\n");
    expect(error).toMatchObject({
      code: "INVALID_INPUT",
      message:
        'flow.yaml:8:16: host "box" asks for the network "container:bot"; a member\'s step containers may have network none or host',
      hint: expect.stringContaining("network: host"),
    });
  });

  it("refuses an image id or a bot's image at the image's position", () => {
    expect(refusal("      executor: docker\n      image: sha256:3f2a\n")?.message).toMatch(
      /^flow\.yaml:7:14: host "box" names the image by its id/,
    );
    expect(refusal("      executor: docker\n      image: runyard-bot-b1:latest\n")?.message).toMatch(
      /^flow\.yaml:7:14: host "box" names "runyard-bot-b1:latest", an image runyard built for a bot/,
    );
  });

  it("lets none (the default), host and an image by name through", () => {
    expect(refusal("      executor: docker\n      image: busybox:1\n")).toBeUndefined();
    expect(refusal("      executor: docker\n      image: busybox:1\n      network: host\n")).toBeUndefined();
    expect(refusal("      {}\n")).toBeUndefined();
  });
});
