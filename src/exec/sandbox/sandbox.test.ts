import { mkdirSync, mkdtempSync, realpathSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Sandbox } from "./sandbox.js";

function sandboxOf() {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "runyard-sandbox-refusal-")));
  const home = join(base, "runner-home");
  const root = join(base, "listed");
  const elsewhere = join(base, "elsewhere");
  for (const folder of [home, root, elsewhere]) mkdirSync(folder);
  const sandbox = new Sandbox({ bwrap: "bwrap", hide: [home], cwdRoots: [root] });
  return { base, home, root, elsewhere, sandbox };
}

describe("the folders a sandbox lets a command work in", () => {
  it("refuses a confined command's cwd outside its roots, naming step_cwd_roots", () => {
    const { sandbox, elsewhere, root } = sandboxOf();
    expect(sandbox.refusal({ cwd: elsewhere })).toContain("step_cwd_roots");
    expect(sandbox.refusal({ cwd: join(root, "app") })).toBeUndefined();
  });

  it("lets a platform admin's command work outside the roots", () => {
    const { sandbox, elsewhere } = sandboxOf();
    expect(sandbox.refusal({ cwd: elsewhere, unconfinedCwd: true })).toBeUndefined();
  });

  it("refuses a platform admin's command in a hidden folder, through a link too", () => {
    const { sandbox, home, base } = sandboxOf();
    symlinkSync(home, join(base, "to-home"));
    for (const cwd of [home, join(base, "to-home")]) {
      expect(sandbox.refusal({ cwd, unconfinedCwd: true }), cwd).toContain(
        "which sandboxed commands cannot see",
      );
    }
  });

  it("refuses a platform admin's command in /, a runtime folder and the host's /tmp itself", () => {
    const { sandbox } = sandboxOf();
    for (const cwd of ["/", "/proc", "/run/user", "/tmp"]) {
      expect(sandbox.refusal({ cwd, unconfinedCwd: true }), cwd).toBeDefined();
    }
  });
});
