import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { finished, parseEvents, repoRoot, runCli } from "./helpers/cli.js";

/** Every example in examples/ runs as its header comment says. */
describe("examples", () => {
  it("simple.yaml prints hello", async () => {
    const result = await runCli(["run", "examples/simple.yaml"]);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain("local | hello");
  });

  it("exports-when-retry.yaml passes variables, skips, retries and tolerates a failure", async () => {
    const result = await runCli(["run", "examples/exports-when-retry.yaml", "--var", "COUNT=3", "--json"]);
    expect(result.code).toBe(0);
    const end = finished(parseEvents(result.stdout));
    expect(end.vars).toMatchObject({ OK: "true", COUNT: "3", NOTES: "line one\nline two" });
    const status = Object.fromEntries((end.steps ?? []).map((s) => [s.name, [s.status, s.attempts]]));
    expect(status).toEqual({
      produce: ["success", 1],
      use: ["success", 1],
      flaky: ["success", 2],
      never: ["skipped", 0],
      "allowed-to-fail": ["failed", 1],
    });
  });

  it("output-limits.yaml caps the log and still exports", async () => {
    const result = await runCli(["run", "examples/output-limits.yaml", "--json"]);
    expect(result.code).toBe(0);
    expect(finished(parseEvents(result.stdout)).vars?.LINES).toBe("2000");
  });

  it("the seed 003 playbook runs unchanged from its folder", async () => {
    const result = await runCli(["run", "backend-task.yaml", "--var", "lint_enabled=true", "--json"], {
      cwd: join(repoRoot, "examples", "playbooks"),
    });
    expect(result.code, result.stderr).toBe(0);
    const steps = finished(parseEvents(result.stdout)).steps ?? [];
    expect(steps.map((s) => s.status)).toEqual(["success", "success", "success"]);
  });
});
