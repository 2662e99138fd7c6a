/**
 * The pod's init, `node -e SCRIPT` (the image has Node for the agent CLIs). A pod's log mixes
 * stdout and stderr, and PID 1 drops unhandled signals; so the init starts the command (argv from
 * `RUNYARD_TURN_ARGV`, dropped from the env), hands on SIGTERM and SIGINT, and writes each output
 * line whole, marked `O ` or `E `, so the runner parses stdout as a local process's. Exits with
 * the command's code (128 + signal when killed); a line over 16 MiB is dropped, as the runner would.
 */
export const podInitScript = `"use strict";
const { spawn } = require("node:child_process");
const { constants } = require("node:os");
const argv = JSON.parse(process.env.RUNYARD_TURN_ARGV || "[]");
delete process.env.RUNYARD_TURN_ARGV;
const max = 16 * 1024 * 1024;
function lines(mark) {
  let pending = "";
  let dropping = false;
  return {
    data(chunk) {
      let start = 0;
      for (;;) {
        const at = chunk.indexOf("\\n", start);
        if (at === -1) break;
        if (!dropping) process.stdout.write(mark + pending + chunk.slice(start, at) + "\\n");
        pending = "";
        dropping = false;
        start = at + 1;
      }
      const rest = chunk.slice(start);
      if (dropping) return;
      if (pending.length + rest.length > max) { pending = ""; dropping = true; return; }
      pending += rest;
    },
    end() {
      if (pending && !dropping) process.stdout.write(mark + pending + "\\n");
      pending = "";
    },
  };
}
if (argv.length === 0) {
  process.stdout.write("E runyard: the pod was given no command\\n");
  process.exit(127);
}
const out = lines("O ");
const err = lines("E ");
const child = spawn(argv[0], argv.slice(1), { stdio: ["ignore", "pipe", "pipe"] });
child.stdout.setEncoding("utf8");
child.stderr.setEncoding("utf8");
child.stdout.on("data", (chunk) => out.data(chunk));
child.stderr.on("data", (chunk) => err.data(chunk));
for (const name of ["SIGTERM", "SIGINT", "SIGHUP"]) {
  process.on(name, () => { try { child.kill(name); } catch {} });
}
let spawnError;
child.on("error", (error) => { spawnError = error; });
child.on("close", (code, signal) => {
  out.end();
  err.end();
  if (spawnError) {
    process.stdout.write("E runyard: cannot start " + argv[0] + ": " + spawnError.message + "\\n");
    process.exitCode = 127;
    return;
  }
  process.exitCode = code !== null ? code : 128 + (constants.signals[signal] || 9);
});
`;

/** The marks the init puts before each line of the command's stdout and stderr. */
export const podLineMarks = { stdout: "O ", stderr: "E " } as const;
