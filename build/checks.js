// Runs the lint and both typechecks side by side (`npm run checks`; `npm test` runs it beside the tests): each is
// one process that mostly uses one core, so on a 2-core machine running them one after another
// left a core idle for most of a minute. Prints each one's output whole when it ends, and exits
// non-zero if any failed, naming which.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
// TypeScript 7's native compiler (the `typescript-7` package): both typechecks in 14 s of CPU
// instead of 48. Single-threaded: beside the tests its threads only compete for the same two
// cores, and each checker thread repeats part of the others' work (8 s of CPU instead of 12).
const tsc = "node_modules/typescript-7/bin/tsc";
const checks = [
  [
    "typecheck (src, test, bench)",
    process.execPath,
    [tsc, "-p", "tsconfig.json", "--noEmit", "--singleThreaded"],
  ],
  ["typecheck (web)", process.execPath, [tsc, "-p", "web/tsconfig.json", "--singleThreaded"]],
  ["lint", "npx", ["biome", "check", "."]],
];

const results = await Promise.all(
  checks.map(
    ([name, command, args]) =>
      new Promise((resolve) => {
        const started = Date.now();
        const child = spawn(command, args, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
        let output = "";
        child.stdout.on("data", (chunk) => (output += chunk));
        child.stderr.on("data", (chunk) => (output += chunk));
        child.on("error", (error) => resolve({ name, code: 1, output: String(error), seconds: 0 }));
        child.on("close", (code) => {
          const seconds = ((Date.now() - started) / 1000).toFixed(1);
          process.stdout.write(
            `== ${name}: ${code === 0 ? "passed" : `failed (exit ${code})`} in ${seconds} s\n`,
          );
          if (output.trim()) process.stdout.write(`${output.trimEnd()}\n`);
          resolve({ name, code });
        });
      }),
  ),
);
const failed = results.filter((result) => result.code !== 0).map((result) => result.name);
if (failed.length > 0) {
  process.stderr.write(`checks failed: ${failed.join(", ")}\n`);
  process.exit(1);
}
