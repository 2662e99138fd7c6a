#!/usr/bin/env node
import { statSync } from "node:fs";
import module from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";

// Node 22.1 and later keep the compiled code of the CLI's modules between starts
// (NODE_DISABLE_COMPILE_CACHE=1 turns it off): most of a short command's time is loading. The
// cache lives in the user's own home, not the shared temp folder where another local user could
// plant compiled code first.
module.enableCompileCache?.(join(homedir(), ".cache", "runyard", "node-compile-cache"));

/**
 * The bundled CLI (`npm run build`: a file per command, a few files a start instead of hundreds)
 * when it was built from the current dist/; the tsc output itself when there is no bundle, or
 * when dist/ was rebuilt after it (`npx tsc -p tsconfig.build.json` alone), so a stale bundle
 * never runs.
 */
function entry() {
  const modified = (path) => statSync(new URL(path, import.meta.url), { throwIfNoEntry: false })?.mtimeMs;
  const bundled = modified("../dist/cli-bundle/main.js");
  const compiled = modified("../dist/cli/main.js");
  return bundled !== undefined && (compiled === undefined || bundled >= compiled)
    ? "../dist/cli-bundle/main.js"
    : "../dist/cli/main.js";
}

const { main } = await import(entry());
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
