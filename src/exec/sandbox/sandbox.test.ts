import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { probeSandbox, Sandbox } from "./sandbox.js";

function sandboxOf() {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "runyard-sandbox-refusal-")));
  const home = join(base, "runner-home");
  const root = join(base, "listed");
  const elsewhere = join(base, "elsewhere");
  for (const folder of [home, root, elsewhere]) mkdirSync(folder);
  const sandbox = new Sandbox({ bwrap: "bwrap", hide: [home] });
  return { base, home, root, elsewhere, sandbox };
}

describe("the folders a sandbox lets a command work in", () => {
  it("leaves where a run may work to core/work-folders.ts: any folder it neither hides nor makes its own", () => {
    const { sandbox, elsewhere, root } = sandboxOf();
    expect(sandbox.refusal({ cwd: elsewhere })).toBeUndefined();
    expect(sandbox.refusal({ cwd: join(root, "app") })).toBeUndefined();
  });

  it("refuses a command in a hidden folder, through a link too", () => {
    const { sandbox, home, base } = sandboxOf();
    symlinkSync(home, join(base, "to-home"));
    for (const cwd of [home, join(base, "to-home")]) {
      expect(sandbox.refusal({ cwd }), cwd).toContain("which sandboxed commands cannot see");
    }
  });

  it("knows a folder the runner made by its real path then, and still follows a link a step leaves in it", () => {
    const { sandbox, home, base } = sandboxOf();
    const run = join(base, "run");
    const sub = join(run, "sub");
    mkdirSync(sub, { recursive: true });
    sandbox.madeFolder(run, run);
    expect(sandbox.refusal({ cwd: run })).toBeUndefined();
    expect(sandbox.refusal({ cwd: sub })).toBeUndefined();
    // A step of the run swaps a folder it worked in for a link to a hidden one: asked again, refused.
    renameSync(sub, `${sub}.old`);
    symlinkSync(home, sub);
    expect(sandbox.realPath(sub)).toBe(home);
    expect(sandbox.refusal({ cwd: sub })).toContain("which sandboxed commands cannot see");
    // Forgotten at its run's end: a link in its place (the operator's) is followed.
    sandbox.forgetFolder(run);
    renameSync(run, `${run}.old`);
    symlinkSync(home, run);
    expect(sandbox.refusal({ cwd: run })).toContain("which sandboxed commands cannot see");
  });

  it("refuses a command in /, a runtime folder and the host's /tmp itself", () => {
    const { sandbox } = sandboxOf();
    for (const cwd of ["/", "/proc", "/run/user", "/tmp"]) {
      expect(sandbox.refusal({ cwd }), cwd).toBeDefined();
    }
  });
});

describe("probeSandbox", () => {
  it("asks a bwrap that failed again before it says the machine has no sandbox; one that keeps failing is none, with its error", async () => {
    const dir = mkdtempSync(join(tmpdir(), "runyard-probe-"));
    // A bwrap that fails its first start (as on a machine short of processes for a moment), then works.
    const once = join(dir, "bwrap-once");
    writeFileSync(
      once,
      `#!/bin/sh\nif [ -e ${dir}/tried ]; then exit 0; fi\n: > ${dir}/tried\necho "bwrap: Creating new namespace failed: Resource temporarily unavailable" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    expect(await probeSandbox(once)).toEqual({ isolation: "sandbox", bwrap: once });
    expect(existsSync(join(dir, "tried"))).toBe(true);
    const never = join(dir, "bwrap-never");
    writeFileSync(never, "#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n", {
      mode: 0o755,
    });
    expect(await probeSandbox(never)).toMatchObject({
      isolation: "none",
      problem: expect.stringContaining("No permissions to create new namespace"),
    });
    expect(await probeSandbox(join(dir, "absent"))).toMatchObject({
      isolation: "none",
      problem: "bubblewrap (bwrap) is not installed",
    });
  });
});
