import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect, test } from "vitest";
import { runCli } from "./helpers/cli.js";

const register = fileURLToPath(new URL("./fixtures/module-count/register.mjs", import.meta.url));

test("`runyard run` of one step loads a few bundled files, not hundreds of modules", async () => {
  const dir = mkdtempSync(join(tmpdir(), "runyard-start-"));
  const file = join(dir, "one.yaml");
  writeFileSync(
    file,
    "name: one\nsteps:\n  - name: s\n    action: cmd.run\n    args:\n      cmd: /bin/true\n",
  );
  const log = join(dir, "modules.log");
  writeFileSync(log, "");
  const result = await runCli(["run", file, "-q"], {
    env: { NODE_OPTIONS: `--import=${register}`, MODULE_LOG: log, RUNYARD_SERVER_URL: "" },
  });
  expect(result.stderr).toBe("");
  expect(result.code).toBe(0);
  const modules = [...new Set(readFileSync(log, "utf8").split("\n").filter(Boolean))];
  // Each module file costs a start a resolve, a stat, an open and a compile: the bundle keeps
  // `runyard run` to its entry and the chunks of the commands it runs (about 20 files).
  expect(modules.some((url) => url.endsWith("/bin/runyard.js"))).toBe(true);
  expect(modules.length, modules.join("\n")).toBeLessThanOrEqual(30);
  expect(modules.filter((url) => url.includes("/node_modules/"))).toEqual([]);
  // Its settings are checked with zod/mini: no file it loads holds zod's full schema classes
  // (about 30 ms of a start), which only a setting beyond the run's own brings in.
  const withFullZod = modules.filter((url) =>
    readFileSync(fileURLToPath(url), "utf8").includes('$constructor("ZodString"'),
  );
  expect(withFullZod).toEqual([]);
});
