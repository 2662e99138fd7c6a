import { execFileSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";

const modified = (path: string): number | undefined =>
  statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;

/**
 * Integration tests run the built CLI, as a user does; build it (and the fork-server) once if
 * missing. The bundle `bin/runyard.js` loads is rebuilt when dist/ is newer than it (after
 * `npx tsc -p tsconfig.build.json`), so the tests run what `npm run build` ships.
 */
export default function setup(): void {
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
