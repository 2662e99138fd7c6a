import { afterEach, describe, expect, it } from "vitest";
import { adminToken, injectJson, startInProcessServer } from "../../../test/helpers/in-process.js";
import type { Workflow } from "../../workflow/model.js";
import type { RunningServer } from "../server.js";
import { parseOnThisThread, type WorkflowParser } from "./workflow-parser.js";

const text = (name: string): string => `name: ${name}\nsteps:\n  - name: s\n    command: echo hi\n`;

describe("runs of one workflow text", () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("parse the text once and share one frozen parse; another text is parsed on its own", async () => {
    const parsed: Array<Workflow | undefined> = [];
    const parse: WorkflowParser = async (...args) => {
      const result = await parseOnThisThread(...args);
      parsed.push(result.workflow);
      return result;
    };
    server = await startInProcessServer({ parseWorkflow: parse });
    for (const name of ["same", "same", "same", "other"]) {
      const answer = await injectJson(server.app, "POST", "/api/runs", {
        token: adminToken,
        body: { workflow: text(name) },
      });
      expect(answer.status).toBe(201);
    }
    expect(parsed.map((workflow) => workflow?.name)).toEqual(["same", "other"]);
    // Shared by every run of its text: no run may change what the next one runs.
    const shared = parsed[0] as Workflow;
    expect(Object.isFrozen(shared)).toBe(true);
    expect(Object.isFrozen(shared.steps[0])).toBe(true);
    expect(() => {
      (shared.vars as Record<string, string>).INJECTED = "1";
    }).toThrow(TypeError);
  });
});
