/**
 * `installPackage` / `installAgents` with the real npm and registry: one small pinned package
 * (json5, whose command prints its version) stands in for an agent CLI, which weigh hundreds
 * of MB each.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { installAgents, installPackage } from "../../src/agents/install.js";
import { tempDir } from "../helpers/cli.js";

const small = { name: "json5", version: "2.2.3", bin: "json5" };

describe("installing an agent CLI", () => {
  it("installs the pinned version into <agentsHome>/<name>, with progress, and checks the command runs", async () => {
    const agentsHome = tempDir();
    const progress: string[] = [];
    const result = await installPackage("small", small, {
      agentsHome,
      env: process.env,
      onProgress: (line) => progress.push(line),
    });
    const path = join(agentsHome, "small", "node_modules", ".bin", "json5");
    expect(result).toEqual({ name: "small", ok: true, path, version: "2.2.3" });
    expect(existsSync(path)).toBe(true);
    expect(progress[0]).toBe(`small: installing json5@2.2.3 into ${join(agentsHome, "small")}`);
    expect(progress.at(-1)).toBe(`small: json5 2.2.3 ready at ${path}`);
    // npm's own lines come through as it works.
    expect(progress.length).toBeGreaterThan(2);
  }, 120_000);

  it("says how to get npm when there is none", async () => {
    const result = await installPackage("small", small, {
      agentsHome: tempDir(),
      env: { ...process.env, PATH: tempDir() },
      onProgress: () => {},
    });
    expect(result).toMatchObject({
      ok: false,
      error: expect.stringContaining("cannot run npm"),
      hint: expect.stringContaining("put npm on PATH"),
    });
  });

  it("says the registry is unreachable, with what to do, when it is", async () => {
    const result = await installPackage("small", small, {
      agentsHome: tempDir(),
      env: {
        ...process.env,
        NPM_CONFIG_REGISTRY: "http://127.0.0.1:9/",
        NPM_CONFIG_FETCH_RETRIES: "0",
        NPM_CONFIG_CACHE: tempDir(),
      },
      onProgress: () => {},
    });
    expect(result).toMatchObject({
      ok: false,
      error: expect.stringContaining("npm install json5@2.2.3 failed"),
      hint: expect.stringContaining("registry is unreachable"),
    });
  }, 60_000);

  it("refuses a name that is no agent CLI, and goes on with the others", async () => {
    const results = await installAgents(["openai", "nope"], {
      agentsHome: tempDir(),
      env: process.env,
      onProgress: () => {},
    });
    expect(results).toEqual([
      expect.objectContaining({
        name: "openai",
        ok: false,
        error: "openai is not an agent CLI runyard installs",
      }),
      expect.objectContaining({ name: "nope", ok: false }),
    ]);
  });
});
