// `npm test` after the build: the checks (lint and both typechecks, build/checks.js) run beside
// the test files instead of before them, at the lowest CPU priority, so they take the cores the
// tests leave idle rather than the minute they cost up front. Arguments go to `vitest run`. The
// checks' output is printed whole when they end; the exit code is non-zero if either part failed,
// and says which.
import { execFileSync, spawn } from "node:child_process";
import { accessSync, closeSync, constants, openSync, readSync } from "node:fs";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

/** Runs `command` with `args`; resolves with its exit code (1 when it could not start or was killed). */
function run(command, args, options) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { cwd: root, ...options });
    child.on("error", (error) => {
      process.stderr.write(`${command}: ${error.message}\n`);
      resolve(1);
    });
    child.on("close", (code) => resolve(code ?? 1));
    if (options.stdio?.[1] === "pipe") {
      let output = "";
      child.stdout.on("data", (chunk) => (output += chunk));
      child.stderr.on("data", (chunk) => (output += chunk));
      child.on("close", () => process.stdout.write(output));
    }
  });
}

/**
 * `PATH` with the folder of the interpreter `python3` runs put first, where the first `python3` on
 * `PATH` is a script that picks one (pyenv's shim). The tests call python3 from their own code (an
 * archive to build, a socket to hold, a server in a network namespace), and each call through the
 * shim is a dozen bash processes before Python starts: 0.6 to 0.7 s of CPU on a loaded 2-core
 * machine, against 0.05 to 0.1 s for the interpreter itself. The same interpreter runs either way.
 */
function withDirectPython(path) {
  const folders = path.split(delimiter).filter(Boolean);
  const first = folders.map((folder) => join(folder, "python3")).find(isExecutable);
  if (first === undefined) return path;
  try {
    if (!isScript(first)) return path;
    const real = execFileSync(first, ["-c", "import sys; print(sys.executable)"], {
      encoding: "utf8",
    }).trim();
    return real && dirname(real) !== dirname(first) ? [dirname(real), ...folders].join(delimiter) : path;
  } catch {
    return path; // no working python3: the tests that need one say so
  }
}

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Whether the file begins with `#!`. */
function isScript(file) {
  const fd = openSync(file, "r");
  try {
    const head = Buffer.alloc(2);
    return readSync(fd, head, 0, 2, 0) === 2 && head.toString("latin1") === "#!";
  } finally {
    closeSync(fd);
  }
}

const checks = run("nice", ["-n", "19", process.execPath, "build/checks.js"], {
  stdio: ["ignore", "pipe", "pipe"],
});
// The tests reach TLS only on servers they start themselves, each trusted by its own certificate.
// A machine's NODE_EXTRA_CA_CERTS (a CA bundle for a proxy, say) makes every node process parse
// that bundle as it starts: 40 ms of CPU each for the system's 140 certificates, and a run starts
// about 1,300 node processes (servers, runners, CLIs). The tests run as on a machine without it.
const { NODE_EXTRA_CA_CERTS: _extraCerts, ...testEnv } = process.env;
testEnv.PATH = withDirectPython(testEnv.PATH ?? "");
const tests = run("npx", ["vitest", "run", ...process.argv.slice(2)], { stdio: "inherit", env: testEnv });

const [checksCode, testsCode] = await Promise.all([checks, tests]);
if (checksCode !== 0) process.stderr.write("npm test: the checks failed (lint or typecheck, above)\n");
if (testsCode !== 0) process.stderr.write("npm test: tests failed (above)\n");
process.exit(checksCode !== 0 ? checksCode : testsCode);
