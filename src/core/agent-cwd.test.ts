import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { agentCwdRefusal } from "./agent-cwd.js";
import { ConfigError, loadConfig } from "./config.js";
import { readConfigFile } from "./config-file.js";

describe("agent_cwd_roots", () => {
  it("reads a YAML list from the config file and a colon-separated list from RUNYARD_AGENT_CWD_ROOTS", () => {
    const path = join(tmpdir(), `runyard-cwd-roots-${process.pid}.yaml`);
    writeFileSync(path, "agent_cwd_roots:\n  - /srv/projects/\n  - /home/ci\n");
    const fromFile = loadConfig({}, readConfigFile(path).overrides);
    expect(fromFile.agentCwdRoots).toEqual(["/srv/projects", "/home/ci"]);
    expect(loadConfig({ RUNYARD_AGENT_CWD_ROOTS: "/srv/a:/srv/b" }).agentCwdRoots).toEqual([
      "/srv/a",
      "/srv/b",
    ]);
    expect(loadConfig({}).agentCwdRoots).toEqual([]);
  });

  it("refuses a root that is relative or climbs with .., naming the variable", () => {
    expect(() => loadConfig({ RUNYARD_AGENT_CWD_ROOTS: "projects" })).toThrowError(ConfigError);
    expect(() => loadConfig({ RUNYARD_AGENT_CWD_ROOTS: "/srv/../etc" })).toThrowError(
      /RUNYARD_AGENT_CWD_ROOTS: "\/srv\/..\/etc" contains \.\./,
    );
  });

  it("allows a root itself and folders under it, not a sibling that shares its prefix", () => {
    const roots = ["/srv/projects"];
    expect(agentCwdRefusal("/srv/projects", roots)).toBeUndefined();
    expect(agentCwdRefusal("/srv/projects/app/", roots)).toBeUndefined();
    expect(agentCwdRefusal("/srv/projects-old", roots)?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(agentCwdRefusal("/srv", roots)?.message).toContain("under none of the server's agent_cwd_roots");
  });

  it("refuses relative paths and .. even when they would land under a root, and everything when no root is listed", () => {
    expect(agentCwdRefusal("projects/app", ["/srv/projects"])?.message).toContain("is a relative path");
    expect(agentCwdRefusal("/srv/projects/a/../b", ["/srv/projects"])?.message).toContain("contains ..");
    expect(agentCwdRefusal("/srv/projects", [])?.message).toContain("lists no folder");
  });
});
