// Bundles the CLI for `bin/runyard.js`: one CommonJS file per entry and a chunk per lazily
// imported command, so that a short command such as `runyard run` opens a handful of files instead of
// hundreds (each module file costs Node a resolve, a stat, an open and a compile). Built from
// the tsc output in dist/ (`npx tsc -p tsconfig.build.json` first), into dist/cli-bundle/.
// CommonJS because Node 20 compiles ES modules from source on every start, while a CommonJS
// file can be compiled with V8's cached code (bin/code-cache.js).
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { builtinModules } from "node:module";
import { fileURLToPath } from "node:url";
import { build } from "rolldown";

const root = fileURLToPath(new URL("..", import.meta.url));

/**
 * Every package is inlined into the bundle (a package of many small files costs a start a resolve,
 * a stat, an open and a compile each: kysely alone is ~400), but those kept apart here. With only
 * zod, yaml, commander, kysely, fastify and a few more inlined, a server started on 167 files of
 * node_modules; with the fastify plugins and every dependency inlined, on 48 (`runyard server` to
 * listening on a fresh home, a quiet 2-core machine: 0.46 s of CPU, now 0.33 s). The ES-module
 * only @kubernetes/client-node must be inlined: a dynamic import() of it from the CommonJS bundle
 * fails under the code cache's vm.Script on Node 20. Kept apart: native addons (better-sqlite3,
 * argon2), pino and its transports (run as files beside them in threads), pg (it looks for its
 * optional native binding at run time), dockerode and its SSH stack (loaded at a runner's first
 * container, with ssh2's optional native crypto), tar (loaded at a bot's first archive), and
 * the OTLP exporter's base (loaded when tracing is on): it reaches `http` by `import()`, which
 * fails in a bundle file compiled from the code cache, so its exports would fail, silently.
 */
const keptApart = new Set([
  "better-sqlite3",
  "bindings",
  "@node-rs/argon2",
  "pino",
  "thread-stream",
  "pino-std-serializers",
  "sonic-boom",
  "pg",
  "pg-native",
  "pg-pool",
  "pg-protocol",
  "pg-types",
  "pg-connection-string",
  "pgpass",
  "dockerode",
  "docker-modem",
  "ssh2",
  "cpu-features",
  "tar",
  "@opentelemetry/otlp-exporter-base",
]);

/** Whether a package is inlined: every one not kept apart. */
const inlinedPackage = (name) => !keptApart.has(name) && !name.startsWith("@node-rs/argon2");

const builtins = new Set(builtinModules);
const packageOf = (id) => (id.startsWith("@") ? id.split("/").slice(0, 2).join("/") : id.split("/")[0]);

/**
 * The core's one-function modules that import nothing (a few hundred bytes each: `exhaustive`,
 * `usernames`, `memory-size` and the like), shared by most commands: one chunk together, not a
 * file each, for each file costs a start a resolve, a stat, an open and a compile.
 */
const coreLeaf = (id) =>
  /[\\/]dist[\\/]core[\\/][^\\/]+\.js$/.test(id) && !/^import /m.test(readFileSync(id, "utf8"));

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
    return !inlinedPackage(packageOf(id));
  },
  logLevel: "warn",
  output: {
    dir: outDir,
    format: "cjs",
    entryFileNames: "[name].js",
    chunkFileNames: "[name]-[hash].js",
    sourcemap: false,
    codeSplitting: { groups: [{ name: "core-leaves", test: coreLeaf, maxModuleSize: 2000 }] },
  },
});
// The package is "type": "module"; the bundle's .js files are CommonJS.
writeFileSync(`${outDir}/package.json`, `${JSON.stringify({ type: "commonjs" })}\n`);
