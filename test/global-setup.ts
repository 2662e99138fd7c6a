import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Integration tests run the built CLI, as a user does; build it (and the fork-server) once if missing. */
export default function setup(): void {
  if (!existsSync(new URL("../native/build/fork-server", import.meta.url))) {
    execFileSync("sh", ["native/build.sh"], { stdio: "inherit", cwd: new URL("..", import.meta.url) });
  }
  if (!existsSync(new URL("../dist/cli/main.js", import.meta.url))) {
    execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  }
}
