import { execFile } from "node:child_process";
import { chmodSync, cpSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { repoRoot, tempDir } from "./helpers/cli.js";

const execFileAsync = promisify(execFile);

/**
 * OpenCode's config for a sandboxed turn (src/runner/conversation-config.ts) as a runner that is
 * not root lays it: root's rights pass over every mode, so the suite's runners, all root, cannot
 * show what a read-only folder does to a runner of a user's own. Each case runs the built module
 * as nobody, from a copy in a folder of its own (the checkout may lie under a folder only root
 * enters), through three turns of one conversation; `between` is what a turn leaves (as nobody,
 * as the turn would, since it runs as the runner's user).
 */
async function turnsAsNobody(between: string): Promise<{ lines: string[]; beside: string[] }> {
  if (process.getuid?.() !== 0)
    throw new Error("this case runs the runner's code as nobody: run the suite as root, as CI does");
  const root = tempDir("runyard-config-nobody-");
  chmodSync(root, 0o777);
  const module = join(root, "conversation-config.js");
  cpSync(join(repoRoot, "dist", "runner", "conversation-config.js"), module);
  const script = join(root, "turns.mjs");
  writeFileSync(
    script,
    [
      `import { mkdirSync, readFileSync, writeFileSync, chmodSync } from "node:fs";`,
      `import { join } from "node:path";`,
      `const { conversationConfigHome } = await import(${JSON.stringify(module)});`,
      `const root = ${JSON.stringify(root)};`,
      `const user = join(root, "home");`,
      `mkdirSync(join(user, ".config", "opencode"), { recursive: true });`,
      `const state = join(root, "agents", "opencode", "run_x-opencode");`,
      `mkdirSync(state, { recursive: true });`,
      `for (const turn of [1, 2, 3]) {`,
      `  writeFileSync(join(user, ".config", "opencode", "opencode.json"), "turn " + turn);`,
      `  try {`,
      `    const home = await conversationConfigHome(state, { HOME: user });`,
      `    const copy = join(home, "opencode");`,
      `    console.log(readFileSync(join(copy, "opencode.json"), "utf8"));`,
      `    ${between}`,
      `  } catch (error) { console.log("turn " + turn + " failed: " + error.message); }`,
      `}`,
    ].join("\n"),
  );
  const { stdout, stderr } = await execFileAsync(
    "setpriv",
    ["--reuid=65534", "--regid=65534", "--clear-groups", process.execPath, script],
    { env: { PATH: "/usr/bin:/bin", HOME: root }, timeout: 30_000, cwd: root },
  ).catch((error: { stdout: string; stderr: string }) => error);
  expect(stderr).toBe("");
  return {
    lines: stdout.trim().split("\n"),
    beside: readdirSync(join(root, "agents", "opencode")),
  };
}

describe("OpenCode's config for a sandboxed turn, laid by a runner that is not root", () => {
  it("lays each turn's read-only copy over the last one's, and leaves nothing beside the state", async () => {
    const { lines, beside } = await turnsAsNobody("");
    expect(lines).toEqual(["turn 1", "turn 2", "turn 3"]);
    expect(beside).toEqual(["run_x-opencode"]);
  });

  it("goes on after a turn left a folder it may not write in its copy, and removes it", async () => {
    const { lines, beside } = await turnsAsNobody(
      `chmodSync(copy, 0o755); mkdirSync(join(copy, "stuck", "deeper"), { recursive: true }); writeFileSync(join(copy, "stuck", "deeper", "f"), "x"); chmodSync(join(copy, "stuck", "deeper"), 0o555); chmodSync(join(copy, "stuck"), 0o555);`,
    );
    expect(lines).toEqual(["turn 1", "turn 2", "turn 3"]);
    expect(beside).toEqual(["run_x-opencode"]);
  });

  it("goes on after a turn took its own rights on the conversation's config folder away", async () => {
    const { lines } = await turnsAsNobody(`chmodSync(home, 0o555);`);
    expect(lines).toEqual(["turn 1", "turn 2", "turn 3"]);
  });
});
