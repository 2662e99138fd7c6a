#!/usr/bin/env node
"use strict";
// CommonJS (bin/package.json): Node starts an ES module entry on its module loader, about a tenth
// more CPU for every command, and the bundle this loads is CommonJS anyway.
const { statSync } = require("node:fs");
const nodeModule = require("node:module");
const { homedir } = require("node:os");
const { join } = require("node:path");

// Most of a short command's time is loading its code, so the compiled code of the CLI's modules
// is kept between starts (NODE_DISABLE_COMPILE_CACHE=1 turns it off): by Node itself from 22.1,
// by code-cache.js on Node 20. The cache lives in the user's own home, not the shared temp
// folder where another local user could plant compiled code first.
const cacheRoot = join(homedir(), ".cache", "runyard");
const cacheOff = process.env.NODE_DISABLE_COMPILE_CACHE !== undefined;

/** `runyard --version` (or `-V`) alone: the package's version, without loading the command tree. */
function versionAsked() {
  const args = process.argv.slice(2);
  return args.length === 1 && (args[0] === "--version" || args[0] === "-V");
}

/**
 * The bundled CLI (`npm run build`: CommonJS, a file per command, a few files a start instead of
 * hundreds) when it was built from the current dist/; the tsc output itself when there is no
 * bundle, or when dist/ was rebuilt after it (`npx tsc -p tsconfig.build.json` alone), so a stale
 * bundle never runs.
 */
function loadMain() {
  const path = (relative) => join(__dirname, relative);
  const modified = (relative) => statSync(path(relative), { throwIfNoEntry: false })?.mtimeMs;
  const bundled = modified("../dist/cli-bundle/main.js");
  const compiled = modified("../dist/cli/main.js");
  if (bundled === undefined || (compiled !== undefined && bundled < compiled)) {
    if (!cacheOff) nodeModule.enableCompileCache?.(join(cacheRoot, "node-compile-cache"));
    return import("../dist/cli/main.js");
  }
  if (!cacheOff) {
    if (nodeModule.enableCompileCache) nodeModule.enableCompileCache(join(cacheRoot, "node-compile-cache"));
    else
      require("./code-cache.js").keepCompiledCode(path("../dist/cli-bundle/"), join(cacheRoot, "code-cache"));
  }
  return Promise.resolve(require("../dist/cli-bundle/main.js"));
}

if (versionAsked()) {
  // The same file the command tree's `--version` reads (src/core/version.ts).
  process.stdout.write(`${require("../package.json").version}\n`);
} else {
  loadMain()
    .then(({ main }) => main(process.argv))
    .then(
      (code) => {
        process.exitCode = code;
      },
      (error) => {
        console.error(error);
        process.exitCode = 1;
      },
    );
}
