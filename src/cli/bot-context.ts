import { existsSync, readdirSync, readFileSync, type Stats } from "node:fs";
import { join } from "node:path";
import { create as createTar, type ReadEntry } from "tar";
import { RunyardError } from "../core/errors.js";

/**
 * `runyard bot start --custom DIR`: the folder packed as the tar.gz the server checks and the
 * runner builds, leaving out what its `.dockerignore` names, as `docker build` would. Links are
 * packed as links (never followed): one that points out of the folder is refused by the server
 * with its name, rather than silently sending a file from elsewhere.
 */

interface IgnoreRule {
  pattern: RegExp;
  negated: boolean;
}

/** A `.dockerignore` line as Docker reads it (Go's filepath.Match plus `**`), relative to the folder. */
function ruleOf(line: string): IgnoreRule | undefined {
  let text = line.trim();
  if (text === "" || text.startsWith("#")) return undefined;
  const negated = text.startsWith("!");
  if (negated) text = text.slice(1).trim();
  text = text
    .replace(/\\/g, "/")
    .replace(/^(\.?\/)+/, "")
    .replace(/\/+$/, "");
  if (text === "" || text === ".") return undefined;
  let source = "";
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i] as string;
    if (c === "*" && text[i + 1] === "*") {
      // `**/` matches any number of folders, none included; a trailing `**` anything below.
      source += text[i + 2] === "/" ? "(?:.*/)?" : ".*";
      i += text[i + 2] === "/" ? 2 : 1;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "[") {
      const end = text.indexOf("]", i + 1);
      if (end < 0) source += "\\[";
      else {
        source += `[${text.slice(i + 1, end)}]`;
        i = end;
      }
    } else source += c.replace(/[.+^${}()|\\]/g, "\\$&");
  }
  return { pattern: new RegExp(`^${source}$`), negated };
}

export function ignoreRules(text: string): IgnoreRule[] {
  return text
    .split("\n")
    .map(ruleOf)
    .filter((rule): rule is IgnoreRule => rule !== undefined);
}

/** Whether `path` (relative, `/`-separated) is left out: the last rule matching it or a folder above it decides. */
export function ignored(rules: readonly IgnoreRule[], path: string): boolean {
  const parts = path.split("/");
  const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
  let out = false;
  for (const rule of rules) {
    if (prefixes.some((prefix) => rule.pattern.test(prefix))) out = !rule.negated;
  }
  return out;
}

/** Docker needs these to build whatever `.dockerignore` says; neither is copied by a `COPY .` that excludes them. */
const alwaysSent = new Set(["Dockerfile", ".dockerignore"]);

/** The folder as a gzipped tar, `.dockerignore` applied; refused early without a Dockerfile at its top. */
export async function packBotFolder(dir: string): Promise<Buffer> {
  if (!existsSync(join(dir, "Dockerfile"))) {
    throw new RunyardError("USAGE", `${dir} has no Dockerfile at its top`, {
      hint: "--custom builds the folder's own Dockerfile: add one (FROM, COPY, CMD), or deploy the code with --simple FILE... and let runyard write it.",
    });
  }
  const ignoreFile = join(dir, ".dockerignore");
  const rules = existsSync(ignoreFile) ? ignoreRules(readFileSync(ignoreFile, "utf8")) : [];
  // A folder left out may still hold an exception (`!keep/this`): walk into it then.
  const exceptions = rules.some((rule) => rule.negated);
  const keep = (path: string, entry: Stats | ReadEntry): boolean => {
    const relative = path.replace(/^\.\//, "");
    if (alwaysSent.has(relative) || !ignored(rules, relative)) return true;
    return "isDirectory" in entry && entry.isDirectory() && exceptions;
  };
  const chunks: Buffer[] = [];
  const stream = createTar(
    { cwd: dir, gzip: true, portable: true, follow: false, filter: keep },
    readdirSync(dir).sort(),
  );
  for await (const chunk of stream as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}
