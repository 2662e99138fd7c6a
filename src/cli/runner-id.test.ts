import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../core/config.js";
import { runnerIdFor } from "./runner-id.js";

describe("runnerIdFor", () => {
  it("makes an id once and keeps it in the home, so a restarted runner comes back under it", () => {
    const home = join(mkdtempSync(join(tmpdir(), "runyard-id-")), "home");
    const config = loadConfig({ RUNYARD_HOSTNAME: "box" });
    const first = runnerIdFor(config, home);
    expect(first).toMatch(/^box-/);
    expect(runnerIdFor(config, home)).toBe(first);
    expect(readFileSync(join(home, "runner-id"), "utf8").trim()).toBe(first);
  });

  it("gives `runyard up`'s local runner an id of its own per home, kept across restarts", () => {
    const config = loadConfig({ RUNYARD_HOSTNAME: "box" });
    const [first, second] = [1, 2].map(() => mkdtempSync(join(tmpdir(), "runyard-id-")));
    const local = runnerIdFor(config, first!, true);
    expect(local).toMatch(/^box-local-[0-9a-z]{6}$/i);
    expect(runnerIdFor(config, first!, true)).toBe(local);
    expect(runnerIdFor(config, second!, true)).not.toBe(local);
    expect(runnerIdFor(config, first!)).not.toBe(local);
  });

  it("keeps `<host>-local` for the local runner of a home an earlier version ran, whose bots wait for it", () => {
    const home = mkdtempSync(join(tmpdir(), "runyard-id-"));
    mkdirSync(join(home, "runners", "box-local"), { recursive: true });
    const config = loadConfig({ RUNYARD_HOSTNAME: "box" });
    expect(runnerIdFor(config, home, true)).toBe("box-local");
    expect(readFileSync(join(home, "local-runner-id"), "utf8").trim()).toBe("box-local");
  });

  it("takes a configured id over the kept one", () => {
    const home = mkdtempSync(join(tmpdir(), "runyard-id-"));
    runnerIdFor(loadConfig({}), home);
    expect(runnerIdFor(loadConfig({ RUNYARD_RUNNER_ID: "fixed" }), home)).toBe("fixed");
  });
});
