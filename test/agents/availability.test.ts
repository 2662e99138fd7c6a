/**
 * Finding agent CLIs: runyard's own install folder first, then PATH; the version from
 * `--version` (real executables: small scripts where the real CLI would be).
 */
import { chmodSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentStatus, findAgent } from "../../src/agents/availability.js";
import { tempDir } from "../helpers/cli.js";

/** An executable `name` in `dir` that prints `output` for --version, and counts its calls. */
function fakeCli(dir: string, name: string, output: string, exitCode = 0): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\necho x >> "${path}.calls"\necho '${output}'\nexit ${exitCode}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe("findAgent", () => {
  it("prefers runyard's own install over PATH", async () => {
    const agentsHome = tempDir();
    const own = fakeCli(
      join(agentsHome, "claude_code", "node_modules", ".bin"),
      "claude",
      "2.1.197 (Claude Code)",
    );
    const onPath = tempDir();
    fakeCli(onPath, "claude", "1.0.0 (Claude Code)");
    expect(await findAgent("claude_code", { agentsHome, env: { PATH: onPath } })).toEqual({
      path: own,
      version: "2.1.197",
    });
  });

  it("finds a CLI on PATH, skipping folders where it is not an executable file", async () => {
    const notExecutable = tempDir();
    writeFileSync(join(notExecutable, "claude"), "not a program");
    const folderNamedLikeIt = tempDir();
    mkdirSync(join(folderNamedLikeIt, "claude"));
    const onPath = tempDir();
    const path = fakeCli(onPath, "claude", "2.0.5 (Claude Code)");
    const env = { PATH: [notExecutable, folderNamedLikeIt, onPath].join(":") };
    expect(await findAgent("claude_code", { agentsHome: tempDir(), env })).toEqual({
      path,
      version: "2.0.5",
    });
  });

  it("finds nothing when the CLI is nowhere", async () => {
    expect(
      await findAgent("claude_code", { agentsHome: tempDir(), env: { PATH: tempDir() } }),
    ).toBeUndefined();
  });

  it("asks a CLI its version once per install, and again after a reinstall", async () => {
    const dir = tempDir();
    const path = fakeCli(dir, "claude", "2.1.197 (Claude Code)");
    const lookup = { agentsHome: tempDir(), env: { PATH: dir } };
    await findAgent("claude_code", lookup);
    await findAgent("claude_code", lookup);
    const { readFileSync } = await import("node:fs");
    expect(readFileSync(`${path}.calls`, "utf8")).toBe("x\n");
    fakeCli(dir, "claude", "2.1.198 (Claude Code)");
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    expect((await findAgent("claude_code", lookup))?.version).toBe("2.1.198");
  });
});

describe("agentStatus of a CLI agent", () => {
  it("is usable when installed and a credential is set, and never shows the credential", async () => {
    const dir = tempDir();
    const path = fakeCli(dir, "claude", "2.1.197 (Claude Code)");
    const status = await agentStatus("claude_code", {
      agentsHome: tempDir(),
      env: { PATH: dir, CLAUDE_CODE_OAUTH_TOKEN: "oauth-secret-value" },
    });
    expect(status).toEqual({
      name: "claude_code",
      installed: true,
      path,
      version: "2.1.197",
      pinned_version: "2.1.197",
      credentials: true,
      usable: true,
    });
    expect(JSON.stringify(status)).not.toContain("oauth-secret-value");
  });

  it("is not usable without credentials, and names the variables to set", async () => {
    const dir = tempDir();
    fakeCli(dir, "claude", "2.1.197 (Claude Code)");
    const status = await agentStatus("claude_code", { agentsHome: tempDir(), env: { PATH: dir } });
    expect(status).toMatchObject({
      installed: true,
      credentials: false,
      usable: false,
      problem: "no credentials: set ANTHROPIC_API_KEY or CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_AUTH_TOKEN",
    });
  });

  it("is not installed when missing, with the install command as the way out", async () => {
    const status = await agentStatus("claude_code", {
      agentsHome: tempDir(),
      env: { PATH: tempDir(), ANTHROPIC_API_KEY: "k" },
    });
    expect(status).toEqual({
      name: "claude_code",
      installed: false,
      pinned_version: "2.1.197",
      credentials: true,
      usable: false,
      problem: "claude not found: run `runyard agents install claude_code`, or put claude on PATH",
    });
  });

  it("is not usable when the CLI found cannot say its version (a broken install)", async () => {
    const dir = tempDir();
    fakeCli(dir, "claude", "Error: cannot find module", 1);
    const status = await agentStatus("claude_code", {
      agentsHome: tempDir(),
      env: { PATH: dir, ANTHROPIC_API_KEY: "k" },
    });
    expect(status).toMatchObject({
      installed: true,
      usable: false,
      problem: expect.stringContaining("--version failed"),
    });
  });
});
