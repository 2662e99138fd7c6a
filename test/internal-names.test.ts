import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { errorTable } from "../src/core/errors.js";
import type { RunningServer } from "../src/server/server.js";
import { repoRoot, runCli } from "./helpers/cli.js";
import { startInProcessServer } from "./helpers/in-process.js";

/**
 * Users never saw the requirement documents this project started from, nor their numbering:
 * nothing they read (help, errors, OpenAPI, docs, README, examples, the web UI, the doc comments of
 * the package's types) may name them.
 * A compatibility surface is named by what it is ("the avtomatika-bot CLI's flags").
 */
const internal = /\bseeds?\b|seed ?0\d{2}|necrocode|DESIGN\.md/i;

function files(dir: string, keep: (path: string) => boolean): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return name === "node_modules" ? [] : files(path, keep);
    return keep(path) ? [path] : [];
  });
}

function offending(text: string): string[] {
  return text.split("\n").filter((line) => internal.test(line));
}

describe("what users read names no internal document", () => {
  it("README, docs/ and examples/", () => {
    const read = [
      join(repoRoot, "README.md"),
      ...files(join(repoRoot, "docs"), (path) => path.endsWith(".md")),
      ...files(join(repoRoot, "examples"), (path) => /\.(md|ya?ml|py|txt)$/.test(path)),
      join(repoRoot, "deploy/kubernetes/README.md"),
    ];
    const found = read.flatMap((path) =>
      offending(readFileSync(path, "utf8")).map((line) => `${relative(repoRoot, path)}: ${line.trim()}`),
    );
    expect(found).toEqual([]);
  });

  it("links in README and docs/ stay inside the repository and lead somewhere", () => {
    const read = [
      join(repoRoot, "README.md"),
      ...files(join(repoRoot, "docs"), (path) => path.endsWith(".md")),
    ];
    const broken: string[] = [];
    for (const path of read) {
      for (const match of readFileSync(path, "utf8").matchAll(/\]\(([^)#\s]+)[^)]*\)/g)) {
        const target = match[1] ?? "";
        if (/^[a-z]+:/i.test(target)) continue;
        const absolute = resolve(dirname(path), target);
        if (relative(repoRoot, absolute).startsWith("..") || !existsSync(absolute)) {
          broken.push(`${relative(repoRoot, path)} -> ${target}`);
        }
      }
    }
    expect(broken).toEqual([]);
  });

  it("the error table's hints", () => {
    const found = Object.entries(errorTable).flatMap(([code, entry]) =>
      offending(entry.hint).map((line) => `${code}: ${line}`),
    );
    expect(found).toEqual([]);
  });

  it("the package's own source, whose doc comments ship in its type declarations", () => {
    const found = files(
      join(repoRoot, "src"),
      (path) => path.endsWith(".ts") && !path.endsWith(".test.ts"),
    ).flatMap((path) =>
      offending(readFileSync(path, "utf8")).map((line) => `${relative(repoRoot, path)}: ${line.trim()}`),
    );
    expect(found).toEqual([]);
  });

  it("the web UI's source", () => {
    const found = files(join(repoRoot, "web/src"), (path) => /\.(tsx?|css|html)$/.test(path)).flatMap(
      (path) =>
        offending(readFileSync(path, "utf8")).map((line) => `${relative(repoRoot, path)}: ${line.trim()}`),
    );
    expect(found).toEqual([]);
  });

  describe("the OpenAPI document", () => {
    let server: RunningServer;
    beforeAll(async () => {
      server = await startInProcessServer();
    });
    afterAll(async () => {
      await server.close();
    });

    it("names no internal document in a summary, description or example", async () => {
      const document = (await server.app.inject({ method: "GET", url: "/openapi.json" })).body;
      expect(offending(JSON.stringify(JSON.parse(document), null, 1))).toEqual([]);
    });
  });

  it("every help page; the avtomatika-bot variables appear on the bot page alone", async () => {
    const pages: { command: string; text: string }[] = [];
    // Four help commands at a time (each is a process that mostly waits on its start): a page's
    // children are asked for as soon as it names them.
    let running = 0;
    const queued: Array<() => void> = [];
    const slot = async <T>(work: () => Promise<T>): Promise<T> => {
      if (running >= 4) await new Promise<void>((resolve) => queued.push(resolve));
      running++;
      try {
        return await work();
      } finally {
        running--;
        queued.shift()?.();
      }
    };
    const visit = async (path: string[]): Promise<void> => {
      const { stdout } = await slot(() => runCli([...path, "--help"]));
      pages.push({ command: path.join(" ") || "runyard", text: stdout });
      const section = stdout.split("\nCommands:\n")[1] ?? "";
      const children = section
        .split("\n")
        .map((line) => /^ {2}([a-z][a-z-]*)/.exec(line)?.[1])
        .filter((name): name is string => name !== undefined && name !== "help");
      await Promise.all(children.map((child) => visit([...path, child])));
    };
    await visit([]);
    expect(pages.length).toBeGreaterThan(40);
    expect(
      pages.flatMap((page) => offending(page.text).map((line) => `${page.command}: ${line.trim()}`)),
    ).toEqual([]);
    const aliases = pages.filter((page) => /AVTOMATIKA_/.test(page.text)).map((page) => page.command);
    expect(aliases).toEqual(["bot"]);
  }, 180_000);
});
