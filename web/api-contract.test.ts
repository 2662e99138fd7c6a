import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { runEventTypes } from "../src/core/event-types.js";

/**
 * The web UI reads the API through the generated types (src/client/api-types.ts) and the spine's
 * types (src/core/events.ts), never through shapes of its own: these checks read web/src's
 * syntax trees and name each place that goes back to casting or copying.
 */

const webSrc = new URL("./src/", import.meta.url).pathname;
const apiTypes = new URL("../src/client/api-types.ts", import.meta.url).pathname;

function sourceFiles(dir: string): ts.SourceFile[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" })
    .filter((name) => /\.tsx?$/.test(name) && !name.endsWith(".test.ts"))
    .map((name) => parse(join(dir, name)));
}

function parse(path: string): ts.SourceFile {
  const kind = path.endsWith(".tsx") ? ts.ScriptKind.TSX : ts.ScriptKind.TS;
  return ts.createSourceFile(path, readFileSync(path, "utf8"), ts.ScriptTarget.Latest, true, kind);
}

function walk(node: ts.Node, visit: (node: ts.Node) => void): void {
  visit(node);
  ts.forEachChild(node, (child) => walk(child, visit));
}

function where(file: ts.SourceFile, node: ts.Node): string {
  const { line } = file.getLineAndCharacterOfPosition(node.getStart(file));
  return `${relative(webSrc, file.fileName)}:${line + 1}: ${node.getText(file).replace(/\s+/g, " ").slice(0, 100)}`;
}

/** The property names of an interface or an object type literal. */
function propertyNames(node: ts.InterfaceDeclaration | ts.TypeLiteralNode): string[] {
  return node.members.flatMap((member) =>
    member.name && (ts.isIdentifier(member.name) || ts.isStringLiteral(member.name))
      ? [member.name.text]
      : [],
  );
}

/** Every object shape of the OpenAPI document's types: schemas, bodies, answers and their parts. */
function apiShapes(): Array<Set<string>> {
  const shapes: Array<Set<string>> = [];
  walk(parse(apiTypes), (node) => {
    if (ts.isTypeLiteralNode(node)) shapes.push(new Set(propertyNames(node)));
  });
  return shapes;
}

/**
 * Whether a type the UI declares copies an API shape: three or more fields that all belong to
 * one shape of the API, or any of the API's snake_case fields (the UI's own names are camelCase).
 */
function copiesApiShape(names: string[], shapes: Array<Set<string>>, apiFields: Set<string>): boolean {
  if (names.some((name) => name.includes("_") && apiFields.has(name))) return true;
  return names.length >= 3 && shapes.some((shape) => names.every((name) => shape.has(name)));
}

describe("the web UI on the API contract", () => {
  const files = sourceFiles(webSrc);

  it("casts nothing: no type assertion in web/src but `as const`", () => {
    const casts: string[] = [];
    for (const file of files)
      walk(file, (node) => {
        if (
          (ts.isAsExpression(node) || ts.isTypeAssertionExpression(node)) &&
          node.type.getText(file) !== "const"
        )
          casts.push(where(file, node));
      });
    expect(casts).toEqual([]);
  });

  it("declares no type that copies a shape of the OpenAPI document", () => {
    const shapes = apiShapes();
    const apiFields = new Set(shapes.flatMap((shape) => [...shape]));
    const copies: string[] = [];
    for (const file of files)
      walk(file, (node) => {
        if (
          (ts.isInterfaceDeclaration(node) || ts.isTypeLiteralNode(node)) &&
          copiesApiShape(propertyNames(node), shapes, apiFields)
        )
          copies.push(where(file, node));
      });
    expect(copies).toEqual([]);
  });

  it("listens to the event types core/events.ts lists, and keeps no list of its own", () => {
    const known = new Set<string>(runEventTypes);
    const ownLists: string[] = [];
    const listeners: string[] = [];
    for (const file of files) {
      walk(file, (node) => {
        // A list of more than half the spine's types is a copy of runEventTypes, not a choice.
        if (ts.isArrayLiteralExpression(node)) {
          const types = node.elements.filter((e) => ts.isStringLiteral(e) && known.has(e.text));
          if (types.length > runEventTypes.length / 2) ownLists.push(where(file, node));
        }
      });
      if (file.text.includes("new EventSource(")) listeners.push(file.fileName);
    }
    expect(ownLists).toEqual([]);
    // Every page that opens a run's stream listens to every type by name, from core's list.
    expect(listeners.length).toBeGreaterThan(0);
    for (const path of listeners) {
      const text = readFileSync(path, "utf8");
      expect(text, relative(webSrc, path)).toMatch(
        /import \{ runEventTypes \} from "(\.\.\/)+src\/core\/event-types\.js";/,
      );
      expect(text, relative(webSrc, path)).toMatch(
        /for \(const type of runEventTypes\)\s+\S+\.addEventListener\(type,/,
      );
    }
  });
});
