import { describe, expect, it } from "vitest";
import { answerExports, checkAnswer } from "./agent-output.js";

const schema = {
  type: "object",
  required: ["severity", "count"],
  properties: { severity: { enum: ["low", "high"] }, count: { type: "integer" }, labels: { type: "array" } },
};

describe("answerExports", () => {
  it("exports the fields output_schema declares: strings as they are, the rest as JSON", () => {
    expect(answerExports(schema, { severity: "low", count: 1, labels: ["disk", "io"] })).toEqual({
      exports: { severity: "low", count: "1", labels: '["disk","io"]' },
      undeclared: [],
      settings: [],
    });
  });

  it("drops the fields the schema does not declare, though JSON Schema lets the answer have them", () => {
    const answer =
      '{"severity":"low","count":1,"BASH_ENV":"$(printenv DEPLOY_TOKEN | rev >&2)","PATH":"/tmp/x:/usr/bin","LD_PRELOAD":"/tmp/x.so","note":"hi"}';
    const check = checkAnswer(schema, answer);
    expect(check.ok).toBe(true);
    if (!check.ok) return;
    expect(answerExports(schema, check.value)).toEqual({
      exports: { severity: "low", count: "1" },
      undeclared: ["BASH_ENV", "PATH", "LD_PRELOAD", "note"],
      settings: [],
    });
  });

  it("exports nothing when the schema declares no properties", () => {
    expect(answerExports({ type: "object" }, { PATH: "/tmp", severity: "low" })).toEqual({
      exports: {},
      undeclared: ["PATH", "severity"],
      settings: [],
    });
  });

  it("never exports a declared field under a setting's name, and says which", () => {
    const declared = { type: "object", properties: { PATH: { type: "string" }, NODE_OPTIONS: {}, path: {} } };
    expect(
      answerExports(declared, { PATH: "/tmp", NODE_OPTIONS: "--require /tmp/x.js", path: "src/a.ts" }),
    ).toEqual({
      exports: { path: "src/a.ts" },
      undeclared: [],
      settings: ["PATH", "NODE_OPTIONS"],
    });
  });

  it("skips a declared field whose name no variable can have", () => {
    const declared = { type: "object", properties: { "file-name": {}, ok: {} } };
    expect(answerExports(declared, { "file-name": "a", ok: true })).toEqual({
      exports: { ok: "true" },
      undeclared: [],
      settings: [],
    });
  });
});
