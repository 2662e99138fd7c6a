import { describe, expect, test } from "vitest";
import { problems, valid } from "../../test/helpers/workflow-parse.js";

const step = (lines: string) => `name: flaky
steps:
  - name: fetch
    action: cmd.run
    args: {cmd: curl -f http://127.0.0.1:9/}
${lines}`;

describe("a step's retry policy", () => {
  test("reads attempts, back-off, delays, exit codes and failures", () => {
    const workflow = valid(
      step(`    retry:
      attempts: 4
      backoff: fixed
      delay: 500ms
      max_delay: 2s
      on_exit_codes: [7, 75]
      on: [error, runner_lost]
`),
    );
    expect(workflow.steps[0]!.retry).toEqual({
      attempts: 4,
      backoff: "fixed",
      delaySeconds: 0.5,
      maxDelaySeconds: 2,
      onExitCodes: [7, 75],
      on: ["error", "runner_lost"],
    });
  });

  test("defaults to exponential back-off from 1 s, every failure retried; a number is the retries", () => {
    expect(valid(step("    retry: {attempts: 3}\n")).steps[0]!.retry).toEqual({
      attempts: 3,
      backoff: "exponential",
      delaySeconds: 1,
      on: ["error", "timeout", "runner_lost"],
    });
    expect(valid(step("    retry: 2\n")).steps[0]!.retry).toMatchObject({ attempts: 3 });
  });

  test("keeps the short form retry_count and retry_delay_seconds", () => {
    const workflow = valid(step("    retry_count: 2\n    retry_delay_seconds: 0.2\n"));
    expect(workflow.steps[0]).toMatchObject({ retryCount: 2, retryDelaySeconds: 0.2 });
    expect(workflow.steps[0]!.retry).toBeUndefined();
  });

  test("refuses a negative delay, max_delay below delay and unknown failures at line:column", () => {
    expect(
      problems(
        step(`    retry:
      attempts: 3
      delay: -2
      on: [error, timout]
`),
      ),
    ).toEqual([
      'wf.yaml:8:14: delay of retry of step "fetch" must be a non-negative duration, got -2 (hint: a wait cannot be negative: write 0 for none, or a number of seconds)',
      'wf.yaml:9:19: on of retry of step "fetch": unknown failure "timout" (hint: did you mean "timeout"?)',
    ]);
    expect(problems(step("    retry: {attempts: 3, delay: 10s, max_delay: 5s}\n"))).toEqual([
      'wf.yaml:6:49: max_delay of retry of step "fetch" (5 s) is less than its delay (10 s) (hint: max_delay caps the growing wait: make it at least the delay, or remove it)',
    ]);
  });

  test("refuses a bad back-off, no attempts, too many, exit code 0 and both forms at once", () => {
    const found = problems(
      step(`    retry_count: 2
    retry: {attempts: 3}
  - name: two
    action: cmd.run
    args: {cmd: "true"}
    retry: {backoff: linear, on_exit_codes: [0, 300]}
  - name: three
    action: cmd.run
    args: {cmd: "true"}
    retry: {attempts: 1000, on: [timeout], on_exit_codes: [1]}
`),
    );
    expect(found.join("\n")).toContain('wf.yaml:6:5: step "fetch" has both retry and retry_count');
    expect(found.join("\n")).toContain(
      'backoff of retry of step "two" must be fixed or exponential, got "linear"',
    );
    expect(found.join("\n")).toContain('retry of step "two" has no attempts');
    expect(found.join("\n")).toContain("0 is success, which is never retried");
    expect(found.join("\n")).toContain("300 is no exit code");
    expect(found.join("\n")).toContain("makes 1000 attempts; at most 100");
    expect(found.join("\n")).toContain("has on_exit_codes, but its on does not list error");
  });

  test("an approval step refuses retry with a hint", () => {
    expect(
      problems(`name: gate
steps:
  - name: ok
    action: approval
    retry: 2
    args: {message: ok?, approvers: [alice]}
`),
    ).toEqual([
      'wf.yaml:5:5: unknown key "retry" in step "ok" (hint: an approval is answered once and never retried: remove it)',
    ]);
  });
});

describe("a workflow's timeout", () => {
  test("takes seconds or a duration, and refuses zero, a negative or words", () => {
    const base = "steps:\n  - name: a\n    action: cmd.run\n    args: {cmd: 'true'}\n";
    expect(valid(`name: t\ntimeout: 10m\n${base}`).runTimeoutSeconds).toBe(600);
    expect(valid(`name: t\ntimeout: 90\n${base}`).runTimeoutSeconds).toBe(90);
    expect(problems(`name: t\ntimeout: -5\n${base}`)[0]).toContain(
      "wf.yaml:2:10: timeout must be a positive duration, got -5",
    );
    expect(problems(`name: t\ntimeout: soon\n${base}`)[0]).toContain(
      'timeout must be a positive duration, got "soon"',
    );
    expect(problems(`name: t\ntimeout: 0\n${base}`)[0]).toContain(
      "timeout must be a positive duration, got 0",
    );
  });
});
