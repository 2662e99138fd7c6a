import { describe, expect, it } from "vitest";
import { parseWorkflow } from "./parse.js";
import { stepFoldersRefusal } from "./step-folders.js";

function workflow(lines: string[]) {
  const text = ["version: v0.1", "name: folders", "steps:", ...lines, ""].join("\n");
  const { workflow: parsed, diagnostics } = parseWorkflow(text, "folders.yaml");
  if (!parsed) throw new Error(JSON.stringify(diagnostics));
  return parsed;
}

const rules = { roots: ["/srv/builds"], own: ["/srv/runyard-home"] };

describe("a workflow's step folders at submit", () => {
  it("refuses a member's step cwd outside step_cwd_roots at the line and column of its cwd key", () => {
    const refusal = stepFoldersRefusal(
      workflow(["  - name: build", "    command: make", "    cwd: /etc/app"]),
      "confined",
      rules,
    );
    expect(refusal?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(refusal?.message).toMatch(/^folders\.yaml:6:5: step "build": /);
    expect(refusal?.message).toContain("step_cwd_roots");
  });

  it("refuses a member's rollback cwd too, at its own key", () => {
    const refusal = stepFoldersRefusal(
      workflow([
        "  - name: deploy",
        "    action: cmd.run",
        "    args:",
        "      cmd: ./deploy",
        "      cwd: /srv/builds/app",
        "    rollback:",
        "      action: cmd.run",
        "      args:",
        "        cmd: ./undo",
        "        cwd: /opt/app",
      ]),
      "confined",
      rules,
    );
    expect(refusal?.message).toMatch(/^folders\.yaml:13:9: step "deploy": /);
  });

  it("lets a member's step work under a root, and a platform admin's anywhere but runyard's own folders", () => {
    expect(
      stepFoldersRefusal(
        workflow(["  - name: make", "    command: make", "    cwd: /srv/builds/app"]),
        "confined",
        rules,
      ),
    ).toBe(undefined);
    expect(
      stepFoldersRefusal(
        workflow(["  - name: make", "    command: make", "    cwd: /tmp/test"]),
        "unconfined",
        rules,
      ),
    ).toBe(undefined);
    expect(
      stepFoldersRefusal(
        workflow(["  - name: make", "    command: make", "    cwd: /srv/runyard-home/db"]),
        "unconfined",
        rules,
      )?.code,
    ).toBe("STEP_CWD_NOT_ALLOWED");
  });
});
