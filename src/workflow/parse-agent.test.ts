import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";
import { checkAnswer } from "./agent-output.js";
import { maxAgentPromptChars } from "./parse-agent.js";

const wf = (args: string) => `name: w
steps:
  - name: triage
    action: agent.run
    args:
${args}
`;

describe("agent.run steps", () => {
  test("read with their args and output schema", () => {
    const workflow = valid(
      wf(`      agent: claude_code
      prompt: Triage \${ISSUE}
      repo: https://example.com/r.git
      push: true
      tests: npm test
      budget: {tokens: 5000, usd: 0.5}
      output_schema:
        type: object
        required: [severity]
        properties:
          severity: {type: string, enum: [low, high]}`),
    );
    const step = workflow.steps[0]!;
    expect(step.action).toBe("agent.run");
    expect(step.agent).toMatchObject({
      agent: "claude_code",
      prompt: "Triage ${ISSUE}",
      repo: "https://example.com/r.git",
      push: true,
      tests: "npm test",
      budget: { tokens: 5000, usd: 0.5 },
      outputSchema: { type: "object", required: ["severity"] },
    });
  });

  test("an unknown agent is refused with the names runyard knows", () => {
    expect(problems(wf("      agent: cluade_code\n      prompt: hi"))).toEqual([
      expect.stringMatching(
        /^wf\.yaml:6:14: unknown agent "cluade_code" in step "triage" \(hint: did you mean "claude_code"\? agents: claude_code, codex/,
      ),
    ]);
  });

  test("a bad schema is refused at the key that is wrong", () => {
    const lines = problems(
      wf(`      agent: codex
      prompt: hi
      output_schema:
        type: object
        properties:
          severity: {type: strng}`),
    );
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^wf\.yaml:11:28: output_schema of step "triage" is not a valid JSON Schema: properties\.severity\.type /,
    );
  });

  test("a schema property named as a setting is refused at its key: the answer would set it", () => {
    const lines = problems(
      wf(`      agent: codex
      prompt: hi
      output_schema:
        type: object
        properties:
          severity: {type: string}
          NODE_OPTIONS: {type: string}`),
    );
    expect(lines).toEqual([
      expect.stringMatching(
        /^wf\.yaml:12:11: output_schema of step "triage": property NODE_OPTIONS would let the agent's answer set NODE_OPTIONS: NODE_OPTIONS is a name programs read as a setting \(node loads/,
      ),
    ]);
  });

  test("a schema of something other than an object is refused", () => {
    expect(
      problems(wf("      agent: codex\n      prompt: hi\n      output_schema: {type: string}"))[0],
    ).toMatch(/wf\.yaml:8:22: output_schema of step "triage" must describe an object/);
  });

  test("a prompt past its limit is refused at its line with what to do instead", () => {
    const lines = problems(wf(`      agent: codex\n      prompt: ${"x".repeat(maxAgentPromptChars + 1)}`));
    expect(lines).toEqual([
      expect.stringMatching(
        /^wf\.yaml:7:15: prompt of step "triage" is 100001 characters, more than the limit of 100000 \(hint: .*repo/,
      ),
    ]);
  });

  test("an output_schema nested too deep or too large is refused before it is compiled", () => {
    let nested = "{type: string}";
    for (let i = 0; i < 12; i++) nested = `{type: object, properties: {a: ${nested}}}`;
    const deep = problems(wf(`      agent: codex\n      prompt: hi\n      output_schema: ${nested}`));
    expect(deep).toEqual([
      expect.stringMatching(
        /^wf\.yaml:8:22: output_schema of step "triage" nests 25 levels deep, more than the limit of 12/,
      ),
    ]);
    const fields = Array.from({ length: 2000 }, (_, i) => `f${i}: {type: string}`).join(", ");
    const large = problems(
      wf(
        `      agent: codex\n      prompt: hi\n      output_schema: {type: object, properties: {${fields}}}`,
      ),
    );
    expect(large).toEqual([
      expect.stringMatching(
        /^wf\.yaml:8:22: output_schema of step "triage" is \d+ bytes as JSON, more than the limit of 32768/,
      ),
    ]);
  });

  test("missing prompt, push without repo and a misplaced key each say what to write", () => {
    const lines = problems(wf("      agent: codex\n      push: true\n      schema: {}"));
    expect(lines.join("\n")).toMatch(/has no prompt/);
    expect(lines.join("\n")).toMatch(/push of step "triage" needs repo/);
    expect(lines.join("\n")).toMatch(/output_schema/);
  });
});

describe("an agent's answer against its schema", () => {
  const schema = { type: "object", required: ["n"], properties: { n: { type: "integer" } } };
  test("JSON in a fence, among words, is read", () => {
    expect(checkAnswer(schema, 'Done.\n```json\n{"n": 3}\n```\n')).toEqual({ ok: true, value: { n: 3 } });
  });
  test("a mismatch says which field", () => {
    expect(checkAnswer(schema, '{"n": "three"}')).toEqual({ ok: false, error: "/n must be integer" });
    expect(checkAnswer(schema, "no json here")).toEqual({ ok: false, error: "the final answer is not JSON" });
  });
});
