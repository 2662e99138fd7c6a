import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { probeSandbox } from "../src/exec/sandbox.js";

const modified = (path: string): number | undefined =>
  statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;

/**
 * Integration tests run the built CLI, as a user does; build it (and the fork-server) once if
 * missing. The bundle `bin/runyard.js` loads is rebuilt when dist/ is newer than it (after
 * `npx tsc -p tsconfig.build.json`), so the tests run what `npm run build` ships.
 *
 * The runners they start sandbox their steps with bubblewrap, as users' runners do: where bwrap
 * cannot make a sandbox, the runners would quietly run every step unsandboxed and the suite would
 * test a runner users do not have, so it stops here instead, on CI and on a laptop alike.
 */
export default async function setup(): Promise<void> {
  const probe = await probeSandbox();
  if (probe.isolation === "none") {
    throw new Error(
      `the integration tests run their runners with the sandbox on, as users have it, but ${probe.problem}: ${probe.hint}`,
    );
  }
  const root = new URL("..", import.meta.url);
  if (!existsSync(new URL("../native/build/fork-server", import.meta.url))) {
    execFileSync("sh", ["native/build.sh"], { stdio: "inherit", cwd: root });
  }
  if (!existsSync(new URL("../dist/cli/main.js", import.meta.url))) {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit", cwd: root });
  }
  const bundled = modified("../dist/cli-bundle/main.js");
  if (bundled === undefined || bundled < (modified("../dist/cli/main.js") ?? 0)) {
    execFileSync(process.execPath, ["build/bundle-cli.js"], { stdio: "inherit", cwd: root });
  }
}
