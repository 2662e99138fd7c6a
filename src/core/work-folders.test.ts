import { mkdirSync, mkdtempSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "./config.js";
import { readConfigFile } from "./config-file.js";
import {
  allowedWorkFolder,
  tempFolderSetting,
  type WorkFolderRules,
  workFolderRefusal,
} from "./work-folders.js";

const steps: WorkFolderRules = { kind: "step", roots: ["/srv/projects"], own: ["/home/runyard/.runyard"] };
const agents: WorkFolderRules = { ...steps, kind: "agent" };

function folders() {
  const base = realpathSync(mkdtempSync(join(tmpdir(), "runyard-work-folders-")));
  const root = join(base, "projects");
  const outside = join(base, "home");
  mkdirSync(root);
  mkdirSync(outside);
  return { base, root, outside };
}

describe("the roots an operator lists", () => {
  it("reads a YAML list from the config file and a colon-separated list from RUNYARD_AGENT_CWD_ROOTS", () => {
    const path = join(tmpdir(), `runyard-cwd-roots-${process.pid}.yaml`);
    writeFileSync(
      path,
      "agent_cwd_roots:\n  - /srv/projects/\n  - /home/ci\nstep_cwd_roots: [/srv/builds]\n",
    );
    const fromFile = loadConfig({}, readConfigFile(path).overrides);
    expect(fromFile.agentCwdRoots).toEqual(["/srv/projects", "/home/ci"]);
    expect(fromFile.stepCwdRoots).toEqual(["/srv/builds"]);
    expect(loadConfig({ RUNYARD_AGENT_CWD_ROOTS: "/srv/a:/srv/b" }).agentCwdRoots).toEqual([
      "/srv/a",
      "/srv/b",
    ]);
    expect(loadConfig({}).agentCwdRoots).toEqual([]);
  });

  it("refuses a root that is relative or climbs with .., naming the variable", () => {
    expect(() => loadConfig({ RUNYARD_AGENT_CWD_ROOTS: "projects" })).toThrowError(ConfigError);
    expect(() => loadConfig({ RUNYARD_STEP_CWD_ROOTS: "/srv/../etc" })).toThrowError(
      /RUNYARD_STEP_CWD_ROOTS: "\/srv\/..\/etc" contains \.\./,
    );
  });
});

describe("a member's folder, as written at submit", () => {
  it("is allowed at a root itself and under it, not in a sibling that shares its prefix", () => {
    expect(workFolderRefusal("/srv/projects", "confined", agents)).toBeUndefined();
    expect(workFolderRefusal("/srv/projects/app/", "confined", agents)).toBeUndefined();
    expect(workFolderRefusal("/srv/projects-old", "confined", agents)?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(workFolderRefusal("/srv", "confined", agents)?.message).toContain(
      "under none of the server's agent_cwd_roots",
    );
  });

  it("is refused with STEP_CWD_NOT_ALLOWED for a step, naming the setting the operator would add", () => {
    const refusal = workFolderRefusal("/tmp/elsewhere", "confined", steps);
    expect(refusal?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(refusal?.status).toBe(400);
    expect(refusal?.message).toContain("step_cwd_roots (RUNYARD_STEP_CWD_ROOTS)");
  });

  it("is refused with AGENT_CWD_NOT_ALLOWED for an agent task, naming agent_cwd_roots", () => {
    const refusal = workFolderRefusal("/tmp/elsewhere", "confined", agents);
    expect(refusal?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    expect(refusal?.message).toContain("agent_cwd_roots (RUNYARD_AGENT_CWD_ROOTS)");
  });

  it("refuses an agent task's relative path and any .., and everything when no root is listed", () => {
    expect(workFolderRefusal("projects/app", "confined", agents)?.message).toContain("is a relative path");
    expect(workFolderRefusal("/srv/projects/a/../b", "confined", agents)?.message).toContain("contains ..");
    expect(workFolderRefusal("/srv/projects", "confined", { ...agents, roots: [] })?.message).toContain(
      "lists no folder",
    );
  });

  it("refuses a step's relative cwd, which the runner would read from its own working folder", () => {
    expect(workFolderRefusal("bin", "confined", steps)?.code).toBe("STEP_CWD_NOT_ALLOWED");
    expect(workFolderRefusal("../elsewhere", "confined", steps)?.message).toContain("climbs with ..");
  });

  it("is refused in runyard's own folders though a root holds them", () => {
    const rules = { ...agents, roots: ["/home/runyard"] };
    expect(workFolderRefusal("/home/runyard/.runyard/agents", "confined", rules)?.message).toContain(
      "one of runyard's own folders",
    );
  });
});

describe("a platform admin's folder, as written at submit", () => {
  it("may be any folder outside the roots", () => {
    expect(workFolderRefusal("/tmp/test", "unconfined", agents)).toBeUndefined();
    expect(workFolderRefusal("/var/lib/app", "unconfined", steps)).toBeUndefined();
  });

  it("is left to the runner when relative, where its real path is judged", () => {
    expect(workFolderRefusal("../sibling", "unconfined", steps)).toBeUndefined();
    expect(workFolderRefusal("projects/app", "unconfined", agents)).toBeUndefined();
  });

  it("is refused in the runner's or server's home and what lies inside them", () => {
    for (const cwd of ["/home/runyard/.runyard", "/home/runyard/.runyard/secret"]) {
      expect(workFolderRefusal(cwd, "unconfined", steps)?.code).toBe("STEP_CWD_NOT_ALLOWED");
      expect(workFolderRefusal(cwd, "unconfined", agents)?.code).toBe("AGENT_CWD_NOT_ALLOWED");
    }
  });

  it("is refused at /, in the runtime folders and at the host's temp folder itself", () => {
    for (const cwd of ["/", "/proc", "/proc/1", "/sys", "/dev", "/run", "/run/user", "/tmp"]) {
      expect(workFolderRefusal(cwd, "unconfined", steps)?.code, cwd).toBe("STEP_CWD_NOT_ALLOWED");
    }
  });
});

describe("a folder on the runner, real path", () => {
  it("is the real path of a folder under a root, created later when it does not exist yet", async () => {
    const { root } = folders();
    const rules = { kind: "agent", roots: [root], own: [] } as const;
    expect(await allowedWorkFolder(join(root, "app", "src"), "confined", rules)).toBe(
      join(root, "app", "src"),
    );
  });

  it("is refused when a symbolic link under the root leads out, also for a folder below the link", async () => {
    const { root, outside } = folders();
    symlinkSync(outside, join(root, "link"));
    for (const cwd of [join(root, "link"), join(root, "link", "new")]) {
      await expect(
        allowedWorkFolder(cwd, "confined", { kind: "agent", roots: [root], own: [] }),
      ).rejects.toMatchObject({
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
    expect(
      await allowedWorkFolder(join(alias, "inner"), "confined", { kind: "agent", roots: [alias], own: [] }),
    ).toBe(join(root, "real"));
  });

  it("is a platform admin's folder anywhere, as its real path", async () => {
    const { base, outside } = folders();
    symlinkSync(outside, join(base, "to-home"));
    const rules = { kind: "step", roots: [], own: [] } as const;
    expect(await allowedWorkFolder(join(base, "to-home"), "unconfined", rules)).toBe(outside);
  });

  it("is refused for a platform admin when a link leads into runyard's own folder", async () => {
    const { root, outside } = folders();
    symlinkSync(outside, join(root, "runner-home"));
    const rules = { kind: "step", roots: [], own: [outside] } as const;
    await expect(
      allowedWorkFolder(join(root, "runner-home", "x"), "unconfined", rules),
    ).rejects.toMatchObject({
      code: "STEP_CWD_NOT_ALLOWED",
      message: expect.stringContaining("one of runyard's own folders"),
    });
  });
});

describe("the host's temp folder setting", () => {
  it("answers what os.tmpdir() answers under each of TMPDIR, TMP and TEMP", () => {
    const names = ["TMPDIR", "TMP", "TEMP"] as const;
    const saved = Object.fromEntries(names.map((name) => [name, process.env[name]]));
    const cases: Array<Partial<Record<(typeof names)[number], string>>> = [
      {},
      { TMPDIR: "/var/tmp/runyard" },
      { TMPDIR: "/var/tmp/runyard/" },
      { TMPDIR: "/" },
      { TMPDIR: "", TMP: "/srv/tmp" },
      { TEMP: "/srv/temp/" },
      { TMP: "/a", TEMP: "/b" },
    ];
    try {
      for (const given of cases) {
        for (const name of names) {
          const value = given[name];
          if (value === undefined) delete process.env[name];
          else process.env[name] = value;
        }
        expect(tempFolderSetting(), JSON.stringify(given)).toBe(tmpdir());
      }
    } finally {
      for (const name of names) {
        const value = saved[name];
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});

/** Runs `check` with TMPDIR, TMP and TEMP as `given` says (unset where it says nothing), then puts them back. */
async function underTempVariables(
  given: Partial<Record<"TMPDIR" | "TMP" | "TEMP", string>>,
  check: () => Promise<void>,
): Promise<void> {
  const names = ["TMPDIR", "TMP", "TEMP"] as const;
  const saved = names.map((name) => [name, process.env[name]] as const);
  const set = (name: string, value: string | undefined) => {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  };
  try {
    for (const name of names) set(name, given[name]);
    await check();
  } finally {
    for (const [name, value] of saved) set(name, value);
  }
}

describe("the host's temp folder as a member's cwd, under an operator's odd TMPDIR", () => {
  it("is refused in every spelling of the folder, through a link to it, and /tmp always; a folder inside it is not", async () => {
    const { root } = folders();
    const temp = join(root, "temp");
    mkdirSync(temp);
    symlinkSync(temp, join(root, "temp-link"));
    symlinkSync("/tmp", join(root, "tmp-link"));
    const rules = { kind: "step", roots: [root], own: [] } as const;
    // How an operator may spell the temp folder: trailing slashes, a climb, a link to it, a path
    // relative to the server's working folder, or TMPDIR empty and TMP set.
    const settings: Array<Partial<Record<"TMPDIR" | "TMP" | "TEMP", string>>> = [
      { TMPDIR: temp },
      { TMPDIR: `${temp}/` },
      { TMPDIR: `${temp}//` },
      { TMPDIR: `${root}/elsewhere/../temp` },
      { TMPDIR: join(root, "temp-link") },
      { TMPDIR: `${join(root, "temp-link")}/` },
      { TMPDIR: relative(process.cwd(), temp) },
      { TMPDIR: "", TMP: temp },
      { TEMP: `${temp}/` },
    ];
    const spellings = [
      temp,
      `${temp}/`,
      `${temp}//`,
      `${temp}/.`,
      `${root}//temp`,
      `${root}/./temp`,
      join(root, "temp-link"),
      `${join(root, "temp-link")}/`,
      "/tmp",
      "/tmp/",
      join(root, "tmp-link"),
    ];
    for (const given of settings) {
      await underTempVariables(given, async () => {
        for (const cwd of spellings) {
          await expect(
            allowedWorkFolder(cwd, "confined", rules),
            `${cwd} under ${JSON.stringify(given)}`,
          ).rejects.toMatchObject({
            code: "STEP_CWD_NOT_ALLOWED",
            message: expect.stringMatching(/sandbox/),
          });
        }
        // Inside the temp folder is a folder like any other under the root.
        expect(await allowedWorkFolder(join(temp, "work"), "confined", rules)).toBe(join(temp, "work"));
      });
    }
  });
});
