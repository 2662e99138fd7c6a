// `npm run build`, `prepare` and the build `npm test` starts with: the TypeScript build (dist/), the
// CLI's bundle (dist/cli-bundle/) and the web UI (dist/web/), one after another. Skipped when
// dist/ holds what it makes and was built after the last change to anything it is made of: its
// stamp is newer than every file and folder of src/, web/, bin/ and build/, than the package and
// TypeScript files, and than node_modules' own lock. So `npm test` right after an install or a
// build starts its tests at once instead of building again (5 to 9 s on a 2-core machine).
// `--force` builds anyway.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const stamp = join(root, "dist", ".build-stamp");
/** What the build makes; a dist/ missing any of them is built again, whatever the stamp says. */
const outputs = ["dist/cli/main.js", "dist/cli-bundle/main.js", "dist/web/index.html"];
const inputs = [
  // npm rewrites it whenever it changes node_modules (the bundle inlines packages from there),
  // `npm ci` too, which leaves package-lock.json as it was.
  "node_modules/.package-lock.json",
  "src",
  "web",
  "bin",
  "build",
  "package.json",
  "package-lock.json",
  "tsconfig.json",
  "tsconfig.build.json",
];

/**
 * The newest modification time among `path` and, for a folder, everything under it: a file
 * removed or renamed changes its folder's time.
 */
function newest(path) {
  const stats = statSync(path, { throwIfNoEntry: false });
  if (!stats) return 0;
  if (!stats.isDirectory()) return stats.mtimeMs;
  let time = stats.mtimeMs;
  for (const entry of readdirSync(path)) {
    if (entry === "node_modules" || entry === "dist") continue;
    time = Math.max(time, newest(join(path, entry)));
  }
  return time;
}

// The TypeScript build emits without checking types (`--noCheck`), with TypeScript 7's native
// compiler (the `typescript-7` package; `typescript` 5 stays for the tools that use its API): the
// same JavaScript, 3 s of CPU instead of 20 on a 2-core machine, where it stood between an
// install and the tests. The types are checked by `npm run typecheck`, which `npm test` runs
// beside the tests (build/checks.js).
const steps = [
  [process.execPath, ["node_modules/typescript-7/bin/tsc", "-p", "tsconfig.build.json", "--noCheck"]],
  [process.execPath, ["build/bundle-cli.js"]],
  ["npx", ["vite", "build", "--config", "web/vite.config.ts", "--logLevel", "warn"]],
];

const built = statSync(stamp, { throwIfNoEntry: false })?.mtimeMs;
const changed = Math.max(...inputs.map((input) => newest(join(root, input))));
const complete = outputs.every((output) => statSync(join(root, output), { throwIfNoEntry: false }));
if (!process.argv.includes("--force") && complete && built !== undefined && built > changed) {
  console.log("build: dist/ is up to date (`npm run build -- --force` builds it again)");
  process.exit(0);
}
// The stamp takes the time the build started: a file saved while it ran is newer, and builds next time.
const started = new Date();
// A build that fails or is stopped half-way leaves no stamp: the next one builds again.
rmSync(stamp, { force: true });
for (const [command, args] of steps) {
  const result = spawnSync(command, args, { cwd: root, stdio: "inherit" });
  if (result.status !== 0) process.exit(result.status ?? 1);
}
mkdirSync(join(root, "dist"), { recursive: true });
writeFileSync(stamp, `${started.toISOString()}\n`);
utimesSync(stamp, started, started);
