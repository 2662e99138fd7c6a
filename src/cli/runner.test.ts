import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.js";
import { runnerIdFor } from "./runner.js";

describe("runnerIdFor", () => {
  it("makes an id once and keeps it in the home, so a restarted runner comes back under it", () => {
    const home = join(mkdtempSync(join(tmpdir(), "runyard-id-")), "home");
    const config = loadConfig({ RUNYARD_HOSTNAME: "box" });
    const first = runnerIdFor(config, home);
    expect(first).toMatch(/^box-/);
    expect(runnerIdFor(config, home)).toBe(first);
    expect(readFileSync(join(home, "runner-id"), "utf8").trim()).toBe(first);
  });

  it("takes a configured id over the kept one", () => {
    const home = mkdtempSync(join(tmpdir(), "runyard-id-"));
    runnerIdFor(loadConfig({}), home);
    expect(runnerIdFor(loadConfig({ RUNYARD_RUNNER_ID: "fixed" }), home)).toBe("fixed");
  });
});
