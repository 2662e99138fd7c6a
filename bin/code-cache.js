"use strict";
const {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
} = require("node:fs");
const Module = require("node:module");
const { dirname, join } = require("node:path");
const vm = require("node:vm");

// Node 20 has no `module.enableCompileCache`: without a cache every start parses and compiles
// the CLI's bundled code again, about a third of a short command's CPU time. This keeps V8's
// compiled code of the bundle's CommonJS files in the user's own cache folder, as Node 22's own
// cache does: written once after the first run of each file (so it holds the functions that run
// needed, not only the top level), read on every later start. V8 refuses data made by another
// V8 version or another source length; the key also carries the file's size and modification
// time, so a rebuilt bundle never runs another build's code.

/** Installs the cache for the CommonJS files under `bundleDir` (a path ending in a separator). */
function keepCompiledCode(bundleDir, cacheRoot) {
  const cacheDir = join(cacheRoot, `v8-${process.versions.v8}`);
  const unsaved = [];
  const compile = Module.prototype._compile;
  Module.prototype._compile = function compileWithCache(content, filename) {
    if (!filename.startsWith(bundleDir)) return compile.call(this, content, filename);
    const { size, mtimeMs } = statSync(filename);
    const key = join(cacheDir, `${filename.replaceAll("/", "%")}-${size}-${mtimeMs}`);
    let cachedData;
    try {
      cachedData = readFileSync(key);
    } catch {}
    const script = new vm.Script(Module.wrap(content), {
      filename,
      cachedData,
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER,
    });
    if (cachedData === undefined || script.cachedDataRejected) unsaved.push({ key, script });
    const require = (id) => this.require(id);
    require.resolve = (request, options) => Module._resolveFilename(request, this, false, options);
    require.main = process.mainModule;
    require.cache = Module._cache;
    return script
      .runInThisContext({ displayErrors: true })
      .call(this.exports, this.exports, require, this, filename, join(filename, ".."));
  };
  process.once("exit", () => {
    if (unsaved.length === 0) return;
    try {
      makeFolders(cacheDir);
      for (const { key, script } of unsaved) {
        // Written aside and renamed, so that a start running beside this one never reads half a file.
        const partial = `${key}.partial-${process.pid}`;
        writeFileSync(partial, script.createCachedData(), { mode: 0o600 });
        renameSync(partial, key);
      }
      dropStaleCode(cacheDir);
    } catch {
      // A cache that cannot be written (a read-only home) costs the next start time, nothing else.
    }
  });
}

/**
 * Deletes the cached code of files that changed or are gone: a rebuild or an upgrade names its
 * bundle's files anew (or gives them another size and time), and without this each one left its
 * predecessor's code behind, hundreds of megabytes after a few dozen builds. Runs only after a
 * start wrote something, so after the first start of a new build; a key's file is its name with
 * `%` for `/`, then its size and modification time.
 */
function dropStaleCode(cacheDir) {
  for (const name of readdirSync(cacheDir)) {
    const path = `${cacheDir}/${name}`;
    if (name.includes(".partial-")) {
      // Another start's file being written, which its rename ends; one a crash left, a minute on.
      const written = statSync(path, { throwIfNoEntry: false });
      if (!written || Date.now() - written.mtimeMs < 60_000) continue;
    } else {
      const key = /^(.*)-(\d+)-([\d.]+)$/.exec(name);
      const current = key && statSync(key[1].replaceAll("%", "/"), { throwIfNoEntry: false });
      if (current && String(current.size) === key[2] && String(current.mtimeMs) === key[3]) continue;
    }
    try {
      unlinkSync(path);
    } catch {}
  }
}

/**
 * Creates `dir` and the folders above it that are missing, each 0700, one level at a time:
 * Node 20's recursive mkdir never returns in a home it cannot write to (`HOME=/proc`).
 */
function makeFolders(dir) {
  const missing = [];
  for (let at = dir; !existsSync(at); at = dirname(at)) {
    if (at === dirname(at)) return;
    missing.unshift(at);
  }
  for (const folder of missing) mkdirSync(folder, { mode: 0o700 });
}

module.exports = { keepCompiledCode };
