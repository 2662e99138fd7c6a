// Bundles the CLI for `bin/runyard.js`: one CommonJS file per entry and a chunk per lazily
// imported command, so that a short command such as `runyard run` opens a handful of files instead of
// hundreds (each module file costs Node a resolve, a stat, an open and a compile). Built from
// the tsc output in dist/ (`npx tsc -p tsconfig.build.json` first), into dist/cli-bundle/.
// CommonJS because Node 20 compiles ES modules from source on every start, while a CommonJS
// file can be compiled with V8's cached code (bin/code-cache.js).
import { rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Packages inlined into the bundle: those every command loads (the config schema's zod, the
 * workflow parser's yaml and croner, commander, the table's string-width), the one that must share
 * their zod (fastify's zod type provider reads our schemas), and the server's pure JavaScript
 * ones made of many small files (kysely alone is ~400): inlined, a server starts on a fifth less
 * CPU (`runyard server` to listening on a fresh home, six starts each on a quiet 2-core machine:
 * 0.80 s to 0.64 s; with an empty compile cache 0.87 s to 0.76 s).
 * Every other package is imported from node_modules as before: native addons (better-sqlite3,
 * argon2), pino (its transports run files beside it in threads), pg (it looks for its optional
 * native binding at run time), and the server's that read files beside themselves.
 */
const inlined = new Set([
  "zod",
  "yaml",
  "commander",
  "string-width",
  "strip-ansi",
  "ansi-regex",
  "emoji-regex",
  "is-fullwidth-code-point",
  "fastest-levenshtein",
  "croner",
  "fastify-type-provider-zod",
  "kysely",
  "semver",
  "@opentelemetry/api",
  "prom-client",
  "fastify",
  "avvio",
  "find-my-way",
  "ret",
  "ajv",
  "ajv-formats",
  "fast-uri",
  "fast-json-stringify",
  "@fastify/ajv-compiler",
  "@fastify/fast-json-stringify-compiler",
  "@fastify/swagger",
  "ws",
  // An ES module only: a dynamic import() of it from the CommonJS bundle fails under the code
  // cache's vm.Script on Node 20, so it is bundled (and loaded on the runner's Kubernetes paths only).
  "@kubernetes/client-node",
]);

const builtins = new Set(builtinModules);
const packageOf = (id) => (id.startsWith("@") ? id.split("/").slice(0, 2).join("/") : id.split("/")[0]);

const outDir = `${root}dist/cli-bundle`;
rmSync(outDir, { recursive: true, force: true });
await build({
  cwd: root,
  input: {
    main: `${root}dist/cli/main.js`,
    // Started by path as a worker thread (server/runs/workflow-parser.ts), so it is an entry of its own.
    "workflow-parse-thread": `${root}dist/server/runs/workflow-parse-thread.js`,
    // Likewise the thread that reads large JSON bodies (server/json-body.ts).
    "json-body-thread": `${root}dist/server/json-body-thread.js`,
  },
  platform: "node",
  external: (id) => {
    if (id.startsWith("node:") || builtins.has(id)) return true;
    if (id.startsWith(".") || id.startsWith("/") || id.startsWith("\0")) return false;
    return !inlined.has(packageOf(id));
  },
  logLevel: "warn",
  output: {
    dir: outDir,
    format: "cjs",
    entryFileNames: "[name].js",
    chunkFileNames: "[name]-[hash].js",
    sourcemap: false,
  },
});
// The package is "type": "module"; the bundle's .js files are CommonJS.
writeFileSync(`${outDir}/package.json`, `${JSON.stringify({ type: "commonjs" })}\n`);
