import { existsSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const src = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/**
 * The modules a module loads before any of its code runs: its static imports, as tsc emits them
 * (type-only imports erased), followed through runyard's own files. Dynamic `import()` is not
 * followed: that is how a command keeps what it rarely needs off its start.
 */
function staticImports(entries: string[]): Map<string, string> {
  const loadedBy = new Map<string, string>();
  const queue = entries.map((entry) => ({ module: join(src, entry), by: "(entry)" }));
  for (let item = queue.shift(); item; item = queue.shift()) {
    const { module, by } = item;
    if (loadedBy.has(module)) continue;
    loadedBy.set(module, by);
    if (!module.startsWith(src)) continue;
    const emitted = ts.transpileModule(readFileSync(module, "utf8"), {
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2022,
        verbatimModuleSyntax: true,
      },
      fileName: module,
    }).outputText;
    for (const [, specifier] of emitted.matchAll(
      /^\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|^\s*import\s+"([^"]+)"/gm,
    )) {
      if (!specifier || specifier.startsWith("node:")) continue;
      const target = specifier.startsWith(".")
        ? resolve(dirname(module), specifier.replace(/\.js$/, ".ts"))
        : `package ${specifier}`;
      if (target.startsWith(src) && !existsSync(target)) throw new Error(`${module}: ${specifier} not found`);
      queue.push({ module: target, by: relative(src, module) });
    }
  }
  return loadedBy;
}

/** What loads `module`, back to the entry: the chain a reader follows to cut it. */
function chain(graph: Map<string, string>, module: string): string {
  const links = [module.startsWith(src) ? relative(src, module) : module];
  for (let by = graph.get(module); by && by !== "(entry)"; by = graph.get(join(src, by))) links.push(by);
  return links.join(" <- ");
}

describe("what `runyard run FILE` loads at start", () => {
  // The CLI's entry, the context every command builds, and the run command itself.
  const graph = staticImports(["cli/main.ts", "cli/process-context.ts", "cli/run.ts"]);

  it("loads no Docker client, HTTP server, PostgreSQL driver or SQLite store", () => {
    const heavy =
      /^package (dockerode|tar|fastify|@fastify\/.*|pg|kysely|better-sqlite3|ws|pino|prom-client)$/;
    const loaded = [...graph.keys()].filter((module) => heavy.test(module));
    expect(loaded.map((module) => chain(graph, module))).toEqual([]);
  });

  it("loads none of the server, store, runner, agents, bots or workspaces", () => {
    const layers = ["server", "store", "runner", "agents", "bots", "workspace"].map((layer) =>
      join(src, layer),
    );
    const loaded = [...graph.keys()].filter((module) =>
      layers.some((layer) => module.startsWith(`${layer}/`)),
    );
    expect(loaded.map((module) => chain(graph, module))).toEqual([]);
  });

  it("loads zod/mini only, not the whole of zod: the config schema is loaded only when a setting beyond run's is set", () => {
    const loaded = [...graph.keys()].filter((module) => /^package zod(\/.*)?$/.test(module));
    expect(
      loaded.filter((module) => module !== "package zod/mini").map((module) => chain(graph, module)),
    ).toEqual([]);
  });
});

describe("what `runyard server` loads at start", () => {
  const graph = staticImports(["cli/main.ts", "cli/process-context.ts", "cli/server.ts"]);

  it("loads no runner and no Docker client: only `runyard up` runs steps (dockerode brings ssh2 and its 16 MB of WebAssembly memory)", () => {
    const loaded = [...graph.keys()].filter(
      (module) => module === "package dockerode" || module.startsWith(join(src, "runner/")),
    );
    expect(loaded.map((module) => chain(graph, module))).toEqual([]);
  });

  it("loads no PostgreSQL driver and no tar: a server on SQLite never needs pg (25 to 50 ms of its start), nor tar until it takes a bot's archive or builds an image", () => {
    const loaded = [...graph.keys()].filter((module) => module === "package pg" || module === "package tar");
    expect(loaded.map((module) => chain(graph, module))).toEqual([]);
  });
});

describe("what `runyard runner` loads at start", () => {
  const graph = staticImports(["cli/main.ts", "cli/process-context.ts", "cli/runner.ts"]);

  it("loads no Docker client: it asks the engine whether it answers, and what it left, in plain requests, and loads dockerode (with its gRPC and SSH stacks, 0.2 s of CPU) when it first works a container", () => {
    expect(graph.has(join(src, "exec/docker/docker-engine.ts"))).toBe(true);
    const loaded = [...graph.keys()].filter((module) => module === "package dockerode");
    expect(loaded.map((module) => chain(graph, module))).toEqual([]);
  });
});
