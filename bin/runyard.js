#!/usr/bin/env node
import { statSync } from "node:fs";
import module, { createRequire } from "node:module";
import { homedir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

// Most of a short command's time is loading its code, so the compiled code of the CLI's modules
// is kept between starts (NODE_DISABLE_COMPILE_CACHE=1 turns it off): by Node itself from 22.1,
// by code-cache.js on Node 20. The cache lives in the user's own home, not the shared temp
// folder where another local user could plant compiled code first.
const cacheRoot = join(homedir(), ".cache", "runyard");
const cacheOff = process.env.NODE_DISABLE_COMPILE_CACHE !== undefined;

/**
 * The bundled CLI (`npm run build`: CommonJS, a file per command, a few files a start instead of
 * hundreds) when it was built from the current dist/; the tsc output itself when there is no
 * bundle, or when dist/ was rebuilt after it (`npx tsc -p tsconfig.build.json` alone), so a stale
 * bundle never runs.
 */
async function loadMain() {
  const path = (relative) => fileURLToPath(new URL(relative, import.meta.url));
  const modified = (relative) => statSync(path(relative), { throwIfNoEntry: false })?.mtimeMs;
  const bundled = modified("../dist/cli-bundle/main.js");
  const compiled = modified("../dist/cli/main.js");
  if (bundled === undefined || (compiled !== undefined && bundled < compiled)) {
    if (!cacheOff) module.enableCompileCache?.(join(cacheRoot, "node-compile-cache"));
    return import("../dist/cli/main.js");
  }
  if (!cacheOff) {
    if (module.enableCompileCache) module.enableCompileCache(join(cacheRoot, "node-compile-cache"));
    else
      (await import("./code-cache.js")).keepCompiledCode(
        path("../dist/cli-bundle/"),
        join(cacheRoot, "code-cache"),
      );
  }
  return createRequire(import.meta.url)("../dist/cli-bundle/main.js");
}

const { main } = await loadMain();
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error);
    process.exitCode = 1;
  },
);
