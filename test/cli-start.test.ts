import { mkdtempSync, readdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import module from "node:module";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { repoRoot, runCli } from "./helpers/cli.js";

const register = fileURLToPath(new URL("./fixtures/module-count/register.mjs", import.meta.url));

/** The module files a `runyard run` of one step loaded, as file paths. */
async function modulesLoadedByRun(env: Record<string, string>): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), "runyard-start-"));
  const file = join(dir, "one.yaml");
  writeFileSync(
    file,
    "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n",
  );
  const log = join(dir, "modules.log");
  writeFileSync(log, "");
  const result = await runCli(["run", file, "-q"], {
    env: { NODE_OPTIONS: `--import=${register}`, MODULE_LOG: log, RUNYARD_SERVER_URL: "", ...env },
  });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  return [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))].map((url) => fileURLToPath(url));
}

test("`runyard run` of one step loads a few bundled files, not hundreds of modules", async () => {
  const modules = await modulesLoadedByRun({});
  // Each module file costs a start a resolve, a stat, an open and a compile: the bundle keeps
  // `runyard run` to its entry and the chunks of the commands it runs (about 30 files: since
  // the commands that only call the API import the client alone, not the runs command's module
  // and through it the engine, the few small modules they share with `runyard run`, a username
  // rule say, are chunks of their own).
  expect(modules.some((path) => path.endsWith("/bin/runyard.js"))).toBe(true);
  expect(modules.length, modules.join("\n")).toBeLessThanOrEqual(32);
  expect(modules.filter((path) => path.includes("/node_modules/"))).toEqual([]);
  // Its settings are checked with zod/mini: no file it loads holds zod's full schema classes
  // (about 30 ms of a start), which only a setting beyond the run's own brings in.
  const withFullZod = modules.filter((path) =>
    readFileSync(path, "utf8").includes('$constructor("ZodString"'),
  );
  expect(withFullZod).toEqual([]);
});

test("`runyard run` with no setting in its environment loads no zod at all; one of its own settings loads zod/mini", async () => {
  const holdsZod = (path: string) => readFileSync(path, "utf8").includes('$constructor("$ZodType"');
  expect((await modulesLoadedByRun({})).filter(holdsZod)).toEqual([]);
  const withSetting = await modulesLoadedByRun({ RUNYARD_KILL_GRACE_MS: "1000" });
  expect(withSetting.filter(holdsZod)).not.toEqual([]);
  expect(
    withSetting.filter((path) => readFileSync(path, "utf8").includes('$constructor("ZodString"')),
  ).toEqual([]);
});

test("`runyard --version` and `-V` answer from the entry alone, the version the command tree prints", async () => {
  const dir = mkdtempSync(join(tmpdir(), "runyard-start-"));
  const log = join(dir, "modules.log");
  const { version } = JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string };
  for (const flag of ["--version", "-V"]) {
    writeFileSync(log, "");
    const env = { NODE_OPTIONS: `--import=${register}`, MODULE_LOG: log };
    const alone = await runCli([flag], { env });
    expect(alone).toEqual({ code: 0, stdout: `${version}\n`, stderr: "" });
    const loaded = readFileSync(log, "utf8").split("\n").filter(Boolean);
    expect(
      loaded.filter((url) => url.includes("/dist/")),
      loaded.join("\n"),
    ).toEqual([]);
    // With a word after it, the command tree answers, and says the same.
    writeFileSync(log, "");
    expect(await runCli([flag, "status"], { env })).toEqual(alone);
    expect(readFileSync(log, "utf8")).toContain("/dist/cli-bundle/main.js");
  }
});

test("a second `runyard run` runs the compiled code its first start left in the user's cache", async () => {
  const home = mkdtempSync(join(tmpdir(), "runyard-start-home-"));
  const file = join(home, "one.yaml");
  writeFileSync(
    file,
    "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n",
  );
  const log = join(home, "modules.log");
  writeFileSync(log, "");
  const env = { HOME: home, NODE_OPTIONS: `--import=${register}`, MODULE_LOG: log, RUNYARD_SERVER_URL: "" };
  const first = await runCli(["run", file, "-q"], { env });
  expect(first.stderr).toBe("");
  expect(first.code).toBe(0);
  const cacheRoot = join(home, ".cache", "runyard");
  if ("enableCompileCache" in module) {
    // Node 22.1 and later keep it themselves.
    expect(readdirSync(join(cacheRoot, "node-compile-cache"))).not.toEqual([]);
    return;
  }
  // Node 20: one file of V8 code per bundled file the run loaded, readable by this user alone.
  const [v8] = readdirSync(join(cacheRoot, "code-cache"));
  const cacheDir = join(cacheRoot, "code-cache", v8!);
  expect(statSync(cacheDir).mode & 0o777).toBe(0o700);
  const bundled = [...new Set(readFileSync(log, "utf8").split("\n"))]
    .filter((url) => url.includes("/dist/cli-bundle/"))
    .map((url) => basename(fileURLToPath(url)));
  expect(bundled.length).toBeGreaterThan(5);
  const cached = () => new Map(readdirSync(cacheDir).map((name) => [name, statSync(join(cacheDir, name))]));
  const before = cached();
  for (const name of bundled) {
    const entry = [...before].find(([key]) => key.includes(`%cli-bundle%${name}-`));
    expect(entry, `no cached code for ${name}`).toBeDefined();
    expect(entry![1].size).toBeGreaterThan(0);
    expect(entry![1].mode & 0o777).toBe(0o600);
  }
  // The second start takes the cache as it is: code V8 refused would be compiled and written again.
  const second = await runCli(["run", file, "-q"], { env });
  expect(second.code).toBe(0);
  const after = cached();
  expect([...after.keys()].sort()).toEqual([...before.keys()].sort());
  for (const [name, stat] of before) expect(after.get(name)!.ino, name).toBe(stat.ino);
});

test("`runyard run` with a home it cannot write to runs and exits, its compiled code not kept", async () => {
  const dir = mkdtempSync(join(tmpdir(), "runyard-start-"));
  const file = join(dir, "one.yaml");
  writeFileSync(
    file,
    "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n",
  );
  // procfs takes no new folders, whoever asks (root too).
  const result = await runCli(["run", file, "-q"], { env: { HOME: "/proc", RUNYARD_SERVER_URL: "" } });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
}, 20_000);

test.skipIf("enableCompileCache" in module)(
  "a start that keeps new compiled code drops the code of files that changed or are gone",
  async () => {
    // Node 20's cache (bin/code-cache.js): a rebuild or an upgrade names its files anew, and their
    // predecessors' code must not pile up in the user's home.
    const home = mkdtempSync(join(tmpdir(), "runyard-start-home-"));
    const file = join(home, "one.yaml");
    writeFileSync(
      file,
      "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n",
    );
    const env = { HOME: home, RUNYARD_SERVER_URL: "" };
    expect((await runCli(["run", file, "-q"], { env })).code).toBe(0);
    const codeRoot = join(home, ".cache", "runyard", "code-cache");
    const cacheDir = join(codeRoot, readdirSync(codeRoot)[0]!);
    const kept = readdirSync(cacheDir).sort();
    const main = kept.find((name) => name.includes("%cli-bundle%main.js-"))!;
    expect(main).toBeDefined();
    // An older build's code of the same file, and the code of a file no build has any more.
    const older = main.replace(/-(\d+)-([\d.]+)$/, "-$1-1000");
    const gone = main.replace("%main.js-", "%gone-0ld0ne.js-");
    writeFileSync(join(cacheDir, older), "old");
    writeFileSync(join(cacheDir, gone), "old");
    // The next start keeps new code (its entry's code is missing), and then looks the folder over.
    unlinkSync(join(cacheDir, main));
    expect((await runCli(["run", file, "-q"], { env })).code).toBe(0);
    expect(readdirSync(cacheDir).sort()).toEqual(kept);
  },
  20_000,
);
