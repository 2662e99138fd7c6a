/**
 * The layers of the code (docs/architecture.md, "Folder map"), checked on every import of every
 * file under src/: a folder imports only folders on lower floors, never one on its own floor or
 * above. Tests are exempt: a test stands over its subject and may start what it talks to (a
 * runner test starts a real server), but code that ships never imports a test's helpers.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

/** From the ground up. `direct` (the agent-server's client and listening host) stands on exec. */
const floors: readonly (readonly string[])[] = [
  ["core"],
  ["workflow", "exec", "store"],
  ["agents", "workspace", "bots", "direct", "forges"],
  ["runner"],
  ["server", "client"],
  // Files directly in src/ (index.ts) are the package's entry, like the CLI.
  ["cli", "."],
];

const srcRoot = dirname(fileURLToPath(import.meta.url));

interface Import {
  file: string;
  specifier: string;
  /** The imported file, relative to src/ (`../test/...` when it lies outside). */
  target: string;
}

function sourceFiles(): string[] {
  return readdirSync(srcRoot, { recursive: true, encoding: "utf8" })
    .filter((path) => path.endsWith(".ts") && !path.endsWith(".d.ts"))
    .map((path) => path.split(sep).join("/"))
    .sort();
}

function isTest(file: string): boolean {
  return file.endsWith(".test.ts");
}

/** Every relative import, `import type`, `export ... from` and `import()` of a file. */
function importsOf(file: string): Import[] {
  const text = readFileSync(join(srcRoot, file), "utf8");
  return ts
    .preProcessFile(text, true, true)
    .importedFiles.map((imported) => imported.fileName)
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => ({
      file,
      specifier,
      target: relative(srcRoot, join(srcRoot, dirname(file), specifier))
        .split(sep)
        .join("/"),
    }));
}

/** The top folder under src/ a path belongs to; "." for a file directly in src/. */
function folderOf(path: string): string {
  return path.includes("/") ? path.slice(0, path.indexOf("/")) : ".";
}

function floorOf(folder: string): number | undefined {
  const floor = floors.findIndex((names) => names.includes(folder));
  return floor === -1 ? undefined : floor + 1;
}

const shipped = sourceFiles().filter((file) => !isTest(file));
const shippedImports = shipped.flatMap(importsOf);

describe("layers", () => {
  it("reads the imports of the code (the check would pass on nothing otherwise)", () => {
    expect(shipped.length).toBeGreaterThan(200);
    expect(shippedImports.length).toBeGreaterThan(1000);
    // A type-only import counts: it ties the two folders as much as any other.
    expect(shippedImports).toContainEqual({
      file: "server/server.ts",
      specifier: "../agents/availability.js",
      target: "agents/availability.js",
    });
  });

  it("places every folder under src/ on a floor", () => {
    const unplaced = [...new Set(sourceFiles().map(folderOf))].filter(
      (folder) => floorOf(folder) === undefined,
    );
    expect(unplaced, "place a new folder on a floor in src/layers.test.ts and docs/architecture.md").toEqual(
      [],
    );
  });

  it("never imports a folder on its own floor or above", () => {
    const upward = shippedImports.flatMap(({ file, specifier, target }) => {
      const from = folderOf(file);
      const to = folderOf(target);
      if (from === to || target.startsWith("../")) return [];
      const fromFloor = floorOf(from) ?? 0;
      const toFloor = floorOf(to) ?? Number.POSITIVE_INFINITY;
      return toFloor < fromFloor
        ? []
        : [
            `src/${file} imports ${specifier}: ${from} (floor ${fromFloor}) stands below or beside ${to} (floor ${toFloor})`,
          ];
    });
    expect(upward).toEqual([]);
  });

  it("keeps the server and the runners apart: they meet only by protocol", () => {
    const across = shippedImports
      .filter(({ file, target }) => {
        const from = folderOf(file);
        const to = folderOf(target);
        return (
          (from === "server" && to === "runner") || (from === "runner" && (to === "server" || to === "store"))
        );
      })
      .map(({ file, specifier }) => `src/${file} imports ${specifier}`);
    expect(across, "what both sides need belongs below both (core, workflow, direct)").toEqual([]);
  });

  it("ships no import of a test or its helpers", () => {
    const intoTests = shippedImports
      .filter(({ target }) => target.startsWith("../") || isTest(target.replace(/\.js$/, ".ts")))
      .map(({ file, specifier }) => `src/${file} imports ${specifier}`);
    expect(intoTests).toEqual([]);
  });
});
