import { mkdirSync, mkdtempSync, realpathSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { confinedAgentCwd } from "./agent-cwd.js";

function folders() {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "runyard-agent-cwd-")));
  const root = join(base, "projects");
  const outside = join(base, "home");
  mkdirSync(root);
  mkdirSync(outside);
  return { base, root, outside };
}

describe("a confined agent task's folder on the runner", () => {
  it("is the real path of a folder under a root, created later when it does not exist yet", async () => {
    const { root } = folders();
    expect(await confinedAgentCwd(join(root, "app", "src"), [root])).toBe(join(root, "app", "src"));
  });

  it("is refused when a symbolic link under the root leads out, also for a folder below the link", async () => {
    const { root, outside } = folders();
    symlinkSync(outside, join(root, "link"));
    for (const cwd of [join(root, "link"), join(root, "link", "new")]) {
      await expect(confinedAgentCwd(cwd, [root])).rejects.toMatchObject({
        code: "AGENT_CWD_NOT_ALLOWED",
        message: expect.stringContaining(`symbolic link to ${outside}`),
      });
    }
  });

  it("follows a root that is itself a symbolic link, and a link that stays inside the root", async () => {
    const { base, root } = folders();
    const alias = join(base, "alias");
    symlinkSync(root, alias);
    mkdirSync(join(root, "real"));
    symlinkSync(join(root, "real"), join(root, "inner"));
    expect(await confinedAgentCwd(join(alias, "inner"), [alias])).toBe(join(root, "real"));
  });

  it("is refused when the path as written is under no root of this runner", async () => {
    const { root, outside } = folders();
    await expect(confinedAgentCwd(outside, [root])).rejects.toMatchObject({
      code: "AGENT_CWD_NOT_ALLOWED",
      message: expect.stringContaining("this runner's allowed folders"),
    });
  });
});
